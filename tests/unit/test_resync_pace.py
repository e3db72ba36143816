"""When the periodic loop reconciles an object in seconds instead of at the next resync."""

from __future__ import annotations

import pytest

from secureredis.reconcile import needs_attention


def cluster_status(healthy: str, last_step: str | None = None) -> dict:
    cluster = {"requiredPods": 6, **({"lastStep": last_step} if last_step else {})}
    return {"conditions": [{"type": "ClusterHealthy", "status": healthy}], "cluster": cluster}


@pytest.mark.parametrize("status, fast", [
    pytest.param({}, False, id="new object"),
    pytest.param({"conditions": [{"type": "Ready", "status": "True"}]}, False,
                 id="standalone ready"),
    pytest.param({"rotations": [{"kind": "ca", "phase": "Idle"}]}, False, id="rotation idle"),
    pytest.param({"rotations": [{"kind": "ca", "phase": "Distributing"}]}, True,
                 id="rotation running"),
    pytest.param({"replication": {"primaryLostSince": "2026-12-05T02:00:00Z"}}, True,
                 id="replication primary lost"),
    pytest.param(cluster_status("True"), False, id="cluster healthy"),
    pytest.param(cluster_status("False", "introduce pod 0 (10.0.0.9:6379, bus 16379) to pod 2"),
                 True, id="cluster repairing"),
    pytest.param(cluster_status("Unknown"), True, id="cluster not assessed yet"),
    pytest.param(cluster_status("False", "blocked: slots 0-5460 have no owner"), False,
                 id="cluster blocked on a person"),
])
def test_needs_attention(status, fast):
    assert needs_attention({"status": status}) is fast
