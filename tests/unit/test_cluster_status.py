"""status.cluster and ClusterHealthy as compute_status writes them from a cluster observation."""

from __future__ import annotations

import pytest

from secureredis import material, reconcile, rotation, servers, spec, topology
from secureredis.conditions import find
from spec_inputs import EXAMPLES, NOW, load_example

UNHEALTHY = topology.Health(False, "NodeCountMismatch", "the cluster has 7 nodes, the spec "
                            "asks for 6")
HEALTHY = topology.Health(True, "ClusterOK", "cluster_state ok")


def cluster_secure_redis() -> spec.SecureRedis:
    body = load_example(next(path for path in EXAMPLES if path.stem == "cluster"))
    body["metadata"].update(namespace="apps", uid="uid-1", generation=1)
    return spec.load(body)


SR = cluster_secure_redis()
MATERIAL = material.ensure(SR, None, now=NOW)


def status_after(cluster: servers.ClusterObservation) -> dict:
    observation = servers.Observation(convergence=rotation.Convergence(), facts=None,
                                      reachable=SR.pod_count, cluster=cluster)
    return reconcile.compute_status(SR, MATERIAL, None, [], {}, observation=observation,
                                    generation=1, now=NOW)


@pytest.mark.parametrize("cluster, expected", [
    pytest.param(servers.ClusterObservation(HEALTHY, 6), {"requiredPods": 6}, id="healthy"),
    pytest.param(servers.ClusterObservation(
        UNHEALTHY, 6, last_step="make pod 0 a replica of pod 1 (abc)",
        waiting_for="nodes abc run in no pod but are not marked failed yet"),
        {"requiredPods": 6, "lastStep": "make pod 0 a replica of pod 1 (abc)",
         "waitingFor": "nodes abc run in no pod but are not marked failed yet"},
        id="step then wait"),
    pytest.param(servers.ClusterObservation(UNHEALTHY, 8, last_step="blocked: slots 0 have no "
                                            "owner"),
                 {"requiredPods": 8, "lastStep": "blocked: slots 0 have no owner"},
                 id="blocked"),
])
def test_cluster_status(cluster, expected):
    assert status_after(cluster)["cluster"] == expected


@pytest.mark.parametrize("health, value", [(HEALTHY, "True"), (UNHEALTHY, "False")])
def test_cluster_healthy_condition(health, value):
    status = status_after(servers.ClusterObservation(health, 6))
    condition = find(status["conditions"], "ClusterHealthy")

    assert condition["status"] == value
    assert condition["reason"] == health.reason
    assert condition["message"] == health.message
