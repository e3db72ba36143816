"""Replication mode on a real node: replicas follow the primary over TLS."""

from __future__ import annotations

import pytest

from secureredis import names
from support.cluster import wait_until
from support.operator import events, get, secure_redis

from e2e_helpers import (cli, connect_pod, operator_access, service_host, start_client,
                         wait_ready)

pytestmark = pytest.mark.node

NAME = "sessions"
SPEC = {
    "mode": "replication",
    "replicas": 2,
    "replication": {"failoverAfter": "10s"},
    "acl": {"users": [{"name": "session_app", "rules": ["~session:*", "+@read", "+@write"]}]},
}


@pytest.fixture
def deployed(node_cluster, namespace, operator):
    node_cluster.apply(secure_redis(NAME, SPEC), namespace=namespace)
    return wait_ready(node_cluster, namespace, NAME)


def test_replica_link_up(node_cluster, namespace, deployed):
    access = operator_access(node_cluster, namespace, NAME)
    replica = connect_pod(node_cluster, namespace, NAME, 1, access)
    try:
        wait_until(lambda: replica.info("replication").get("master_link_status") == "up", 60,
                   message="replica link up")
        info = replica.info("replication")
    finally:
        replica.close()

    assert info["role"] == "slave"
    assert info["master_host"] == names.pod_dns_name(NAME, namespace, 0, "cluster.local")


def test_writes_reach_replica(node_cluster, namespace, deployed):
    pod = start_client(node_cluster, namespace, "app", names.user_secret(NAME, "session_app"),
                       {names.client_label(NAME): "true"})
    written = cli(node_cluster, namespace, pod, service_host(NAME, namespace),
                  "SET", "session:1", "alive")
    access = operator_access(node_cluster, namespace, NAME)

    assert written.stdout.strip() == "OK"
    replica = connect_pod(node_cluster, namespace, NAME, 1, access)
    try:
        wait_until(lambda: replica.info("replication").get("master_repl_offset", 0) > 0, 30,
                   message="replica received the write")
    finally:
        replica.close()


def test_status_passes_every_check(deployed):
    checks = deployed["status"]["checks"]

    assert checks["failed"] == []
    assert checks["passed"] == checks["total"]


def test_primary_loss_promotes_replica(node_cluster, namespace, deployed):
    pod = start_client(node_cluster, namespace, "app", names.user_secret(NAME, "session_app"),
                       {names.client_label(NAME): "true"})
    host = service_host(NAME, namespace)
    assert cli(node_cluster, namespace, pod, host, "SET", "session:before", "kept").stdout.strip() == "OK"
    access = operator_access(node_cluster, namespace, NAME)
    replica = connect_pod(node_cluster, namespace, NAME, 1, access)
    try:
        wait_until(lambda: replica.info("replication").get("master_link_status") == "up", 60,
                   message="replica in sync before the failure")
    finally:
        replica.close()

    node_cluster.kubectl("-n", namespace, "delete", "pod", f"{NAME}-0", "--wait=false")

    def promoted() -> bool:
        status = get(node_cluster, namespace, "secureredis", NAME)["status"]
        return (status.get("replication") or {}).get("primary") == f"{NAME}-1"

    wait_until(promoted, 180, interval=2, message="the replica promoted")
    assert events(node_cluster, namespace, "PrimaryPromoted")
    wait_until(lambda: cli(node_cluster, namespace, pod, host, "SET", "session:after",
                           "written").stdout.strip() == "OK", 60, interval=2,
               message="clients of the client Service write again")
    assert cli(node_cluster, namespace, pod, host, "GET", "session:before").stdout.strip() == "kept"
    wait_ready(node_cluster, namespace, NAME)
