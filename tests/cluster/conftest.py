"""Fixtures of the cluster smoke tests: tests marked ``node`` get the node
tier, the others the control-plane tier."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for `support`
from support.fixtures import control_plane, namespace, node_cluster  # noqa: E402,F401


@pytest.fixture
def kube_cluster(request):
    if request.node.get_closest_marker("node"):
        return request.getfixturevalue("node_cluster")
    return request.getfixturevalue("control_plane")
