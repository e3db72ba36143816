"""Redis 8.0 and Valkey 8.1 on a real node: the same hardening as Redis 7.0.

The other end-to-end tests run the default, Redis 7.0. Here one standalone
deployment per other server line must become Ready with every check passed
and serve a labelled client over mutual TLS, with FLUSHALL unknown.
"""

from __future__ import annotations

import pytest

from secureredis import names
from support.operator import secure_redis

from e2e_helpers import cli, python_client, service_host, start_client, wait_ready

pytestmark = pytest.mark.node

NAME = "lines"
USERS = [{"name": "app", "rules": ["~app:*", "+@read", "+@write", "+ping"]},
         {"name": "ops", "admin": True, "rules": ["~*", "&*", "+@all"]}]


@pytest.mark.parametrize("version,server", [("redis-8.0", "redis_version:8.0"),
                                            ("valkey-8.1", "valkey_version:8.1")])
def test_server_line_hardened(node_cluster, namespace, operator, version, server):
    node_cluster.apply(secure_redis(NAME, {"version": version, "acl": {"users": USERS}}),
                       namespace=namespace)
    deployed = wait_ready(node_cluster, namespace, NAME)

    checks = deployed["status"]["checks"]
    assert checks["failed"] == []
    assert checks["passed"] == 12

    label = {names.client_label(NAME): "true"}
    app = start_client(node_cluster, namespace, "app", names.user_secret(NAME, "app"), label)
    ops = start_client(node_cluster, namespace, "ops", names.user_secret(NAME, "ops"), label)
    host = service_host(NAME, namespace)

    assert cli(node_cluster, namespace, app, host, "SET", "app:k", "v").stdout.strip() == "OK"
    assert cli(node_cluster, namespace, app, host, "GET", "app:k").stdout.strip() == "v"
    info = cli(node_cluster, namespace, ops, host, "INFO", "server").stdout
    assert server in info
    flush = cli(node_cluster, namespace, ops, host, "FLUSHALL")
    assert "unknown command" in flush.stdout + flush.stderr
    verified = python_client(node_cluster, namespace, app, host)
    assert verified.returncode == 0, verified.stderr[-400:]
    assert verified.stdout.strip() == "yes"
