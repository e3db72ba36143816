"""Fixtures of the end-to-end tier: real Redis pods on the node tier.

The operator runs on the host as ``secure-redis run`` restricted to the
test's namespace; the host reaches pod IPs over the node's bridge, as an
operator pod would over the pod network.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for `support`
from support.fixtures import namespace, node_cluster  # noqa: E402,F401
from support.operator import OperatorProcess, install_crd  # noqa: E402

# Pods start slower than objects appear: resync often enough that tests do
# not wait long for the operator to notice a pod became ready.
E2E_RESYNC_SECONDS = 3.0


@pytest.fixture
def kube_cluster(node_cluster):
    return node_cluster


@pytest.fixture(scope="session")
def crd(node_cluster) -> None:
    install_crd(node_cluster)


@pytest.fixture
def operator(node_cluster, crd, namespace, tmp_path) -> Iterator[OperatorProcess]:
    process = OperatorProcess(node_cluster, namespace, log_path=tmp_path / "operator.log",
                              resync_seconds=E2E_RESYNC_SECONDS)
    process.start()
    try:
        yield process
    finally:
        process.stop()
