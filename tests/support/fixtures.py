"""pytest fixtures for tests that need a Kubernetes cluster.

Import them into a conftest.py::

    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/
    from support.fixtures import control_plane, kube_cluster, namespace, node_cluster  # noqa: E402,F401

Fixtures:

* ``control_plane`` (session): a Cluster with at least the control-plane tier.
* ``node_cluster`` (session): a Cluster of the node tier.
* ``kube_cluster``: the cluster that ``namespace`` uses. It is
  ``control_plane`` unless a conftest overrides it (see its docstring).
* ``namespace``: a fresh namespace per test, deleted afterwards.

A cluster already running (started by ``hack/cluster.sh up``) or named by
SRO_KUBECONFIG is used as it is and left running. A cluster that the
fixtures start is stopped at the end of the session.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from . import cluster as clusters


@pytest.fixture(scope="session")
def control_plane() -> Iterator[clusters.Cluster]:
    """Yield a running control-plane tier (or a node tier, which contains one)."""
    cluster = clusters.acquire("control-plane")
    try:
        yield cluster
    finally:
        clusters.release(cluster)


@pytest.fixture(scope="session")
def node_cluster() -> Iterator[clusters.Cluster]:
    """Yield a running node tier."""
    cluster = clusters.acquire("node")
    try:
        yield cluster
    finally:
        clusters.release(cluster)


@pytest.fixture
def kube_cluster(control_plane: clusters.Cluster) -> clusters.Cluster:
    """The cluster ``namespace`` creates namespaces in.

    Override it in a conftest to run on the node tier::

        @pytest.fixture
        def kube_cluster(node_cluster):
            return node_cluster
    """
    return control_plane


@pytest.fixture
def namespace(kube_cluster: clusters.Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """Yield the name of a new namespace named after the test; delete it afterwards."""
    name = clusters.create_namespace(kube_cluster, request.node.name)
    try:
        yield name
    finally:
        clusters.delete_namespace(kube_cluster, name)
