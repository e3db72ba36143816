"""A standalone SecureRedis on a real node: Ready, reachable only by labelled clients."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from secureredis import names
from support.operator import REPO, secure_redis

from e2e_helpers import (cli, connect_pod, operator_access, pod_ip, python_client,
                         service_host, start_client, tcp_reachable, wait_ready)

pytestmark = pytest.mark.node

NAME = "cache"
EXAMPLE = yaml.safe_load((REPO / "manifests/examples/standalone.yaml").read_text())
CLIENT_LABEL = {names.client_label(NAME): "true"}


@pytest.fixture
def deployed(node_cluster, namespace, operator):
    node_cluster.apply(secure_redis(NAME, EXAMPLE["spec"]), namespace=namespace)
    return wait_ready(node_cluster, namespace, NAME)


def test_status_passes_every_check(deployed):
    checks = deployed["status"]["checks"]

    assert checks["failed"] == []
    assert checks["passed"] == checks["total"]
    assert checks["total"] == 12


def test_labelled_client_uses_mtls(node_cluster, namespace, deployed):
    pod = start_client(node_cluster, namespace, "app", names.user_secret(NAME, "app_service"),
                       CLIENT_LABEL)
    host = service_host(NAME, namespace)

    assert cli(node_cluster, namespace, pod, host, "PING").stdout.strip() == "PONG"
    assert cli(node_cluster, namespace, pod, host, "SET", "app:greeting", "hello").stdout.strip() == "OK"
    assert cli(node_cluster, namespace, pod, host, "GET", "app:greeting").stdout.strip() == "hello"


def test_client_verifies_host_name(node_cluster, namespace, deployed):
    pod = start_client(node_cluster, namespace, "app", names.user_secret(NAME, "app_service"),
                       CLIENT_LABEL)

    result = python_client(node_cluster, namespace, pod, service_host(NAME, namespace))

    assert result.returncode == 0, result.stderr[-400:]
    assert result.stdout.strip() == "yes"


def test_flushall_rejected(node_cluster, namespace, deployed):
    pod = start_client(node_cluster, namespace, "admin", names.user_secret(NAME, "redis_admin"),
                       CLIENT_LABEL)

    result = cli(node_cluster, namespace, pod, service_host(NAME, namespace), "FLUSHALL")

    assert "unknown command" in result.stdout + result.stderr


def test_reader_cannot_write(node_cluster, namespace, deployed):
    pod = start_client(node_cluster, namespace, "reader", names.user_secret(NAME, "cache_reader"),
                       CLIENT_LABEL)
    host = service_host(NAME, namespace)

    write = cli(node_cluster, namespace, pod, host, "SET", "cache:x", "1")
    read = cli(node_cluster, namespace, pod, host, "GET", "cache:x")

    assert "NOPERM" in write.stdout + write.stderr
    assert read.returncode == 0


def test_unlabelled_pod_cannot_connect(node_cluster, namespace, deployed):
    labelled = start_client(node_cluster, namespace, "app", names.user_secret(NAME, "app_service"),
                            CLIENT_LABEL)
    unlabelled = start_client(node_cluster, namespace, "stranger",
                              names.user_secret(NAME, "app_service"), {})
    host = service_host(NAME, namespace)
    redis_ip = pod_ip(node_cluster, namespace, f"{NAME}-0")

    assert tcp_reachable(node_cluster, namespace, labelled, host, 6379) is True
    assert tcp_reachable(node_cluster, namespace, unlabelled, host, 6379) is False
    assert tcp_reachable(node_cluster, namespace, unlabelled, redis_ip, 6379) is False
    assert tcp_reachable(node_cluster, namespace, unlabelled, redis_ip, 16379) is False
    assert cli(node_cluster, namespace, unlabelled, host, "PING", timeout_seconds=6).returncode != 0


def test_audit_passes(node_cluster, namespace, deployed, tmp_path):
    access = operator_access(node_cluster, namespace, NAME)
    files = {"ca.crt": access.ca_pem, "op.crt": access.cert_pem, "op.key": access.key_pem}
    for file_name, text in files.items():
        path = tmp_path / file_name
        path.write_text(text)
        path.chmod(0o600)
    address = pod_ip(node_cluster, namespace, f"{NAME}-0")

    command = [sys.executable, "-m", "secureredis.cli", "audit", f"rediss://{address}:6379",
               "--tls-server-name", names.pod_dns_name(NAME, namespace, 0, "cluster.local"),
               "--cacert", str(tmp_path / "ca.crt"), "--cert", str(tmp_path / "op.crt"),
               "--key", str(tmp_path / "op.key"), "--user", access.username,
               "--admin", "redis_admin", "--output", "json",
               *[f"--renamed={c}={n}" for c, n in access.renames.items()]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "REDISCLI_AUTH": access.password})

    assert result.returncode == 0, result.stderr[-400:]
    assert '"fail"' not in result.stdout


def test_operator_reaches_pod(node_cluster, namespace, deployed):
    access = operator_access(node_cluster, namespace, NAME)

    client = connect_pod(node_cluster, namespace, NAME, 0, access)
    try:
        assert client.execute_command("ACL", "WHOAMI") == access.username
    finally:
        client.close()


def test_operator_serves_metrics(node_cluster, namespace, operator, deployed):
    if not hasattr(operator, "metrics_url"):
        pytest.skip("the operator runs on the host without metrics (SRO_E2E_OPERATOR=host)")

    import urllib.request

    text = urllib.request.urlopen(operator.metrics_url(), timeout=10).read().decode()

    for metric in ("secure_redis_reconciles_total", "secure_redis_reconcile_duration_seconds",
                   "secure_redis_reconcile_errors_total", "secure_redis_rotations_total",
                   "secure_redis_certificate_expiry_timestamp_seconds",
                   "secure_redis_acl_denials_total", "secure_redis_api_writes_total"):
        assert metric in text, metric
    assert f'namespace="{namespace}"' in text
