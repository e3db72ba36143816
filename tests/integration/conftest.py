"""Fixtures of the integration tier: the operator against a real API server.

The control-plane tier (etcd, kube-apiserver, kube-controller-manager built
by hack/) runs for the whole session. Each test gets its own namespace and
its own operator process, started with ``secure-redis run`` and restricted
to that namespace, so tests never see each other's objects.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for `support`
from support.fixtures import control_plane, kube_cluster, namespace  # noqa: E402,F401
from support.operator import OperatorProcess, install_crd  # noqa: E402


@pytest.fixture(scope="session")
def crd(control_plane) -> None:
    install_crd(control_plane)


@pytest.fixture
def operator(control_plane, crd, namespace, tmp_path) -> Iterator[OperatorProcess]:
    process = OperatorProcess(control_plane, namespace, log_path=tmp_path / "operator.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()
