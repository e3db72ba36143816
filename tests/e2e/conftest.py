"""Fixtures of the end-to-end tier: real Redis pods on the node tier.

By default the operator runs as users install it: the Deployment from
manifests/base, with the image built here and imported into the node's
containerd, and only the resync interval shortened. SRO_E2E_OPERATOR=host
runs it on the host instead, as ``secure-redis run`` restricted to the
test's namespace, which starts faster while developing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for `support`
from support.fixtures import namespace, node_cluster  # noqa: E402,F401
from support import incluster  # noqa: E402
from support.operator import OperatorProcess, install_crd  # noqa: E402

IN_CLUSTER = os.environ.get("SRO_E2E_OPERATOR", "deployment") == "deployment"

# Pods start slower than objects appear: resync often enough that tests do
# not wait long for the operator to notice a pod became ready.
E2E_RESYNC_SECONDS = 3.0


@pytest.fixture
def kube_cluster(node_cluster):
    return node_cluster


@pytest.fixture(scope="session")
def crd(node_cluster) -> None:
    install_crd(node_cluster)


@pytest.fixture(scope="session")
def operator_deployment(node_cluster, crd):
    if not IN_CLUSTER:
        return None
    incluster.build_and_import(node_cluster)
    incluster.deploy(node_cluster, E2E_RESYNC_SECONDS)
    return incluster.InClusterOperator(node_cluster, E2E_RESYNC_SECONDS)


@pytest.fixture
def operator(node_cluster, crd, operator_deployment, namespace, tmp_path):
    if operator_deployment is not None:
        operator_deployment.start()
        yield operator_deployment
        return
    process = OperatorProcess(node_cluster, namespace, log_path=tmp_path / "operator.log",
                              resync_seconds=E2E_RESYNC_SECONDS)
    process.start()
    try:
        yield process
    finally:
        process.stop()
