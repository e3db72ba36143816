"""A standalone SecureRedis signed by a company CA (spec.tls.issuer: secret) on a real node.

The CA is an intermediate under a root, handed over in a kubernetes.io/tls
Secret. The pods must serve certificates from it, pass every check, and let
a labelled client in over mutual TLS with host-name verification.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone

import pytest
from cryptography import x509

from secureredis import names, pki
from support.certs import company_pki, tls_secret_data
from support.operator import get, secure_redis

from e2e_helpers import cli, python_client, service_host, start_client, wait_ready

pytestmark = pytest.mark.node

NAME = "corp"
CA_SECRET = "corp-redis-ca"
SPEC = {"tls": {"issuer": "secret", "secretName": CA_SECRET},
        "acl": {"users": [{"name": "app", "rules": ["~app:*", "+@read", "+@write", "+ping"]}]}}


@pytest.fixture
def corp_pki():
    return company_pki(datetime.now(timezone.utc))


@pytest.fixture
def deployed(node_cluster, namespace, operator, corp_pki):
    root, intermediate = corp_pki
    node_cluster.apply({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                        "metadata": {"name": CA_SECRET},
                        "stringData": tls_secret_data(intermediate, chain=root)},
                       namespace=namespace)
    node_cluster.apply(secure_redis(NAME, SPEC), namespace=namespace)
    return wait_ready(node_cluster, namespace, NAME)


def test_users_ca_deployment_ready(node_cluster, namespace, deployed, corp_pki):
    _, intermediate = corp_pki
    checks = deployed["status"]["checks"]
    assert checks["failed"] == []
    assert checks["passed"] == 12

    data = get(node_cluster, namespace, "secret", names.tls_secret(NAME))["data"]
    server = x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))
    server.verify_directly_issued_by(intermediate.certificate)
    assert deployed["status"]["tls"]["serial"] == pki.serial_hex(server.serial_number)


def test_users_ca_client_over_mtls(node_cluster, namespace, deployed):
    pod = start_client(node_cluster, namespace, "app", names.user_secret(NAME, "app"),
                       {names.client_label(NAME): "true"})
    host = service_host(NAME, namespace)

    assert cli(node_cluster, namespace, pod, host, "SET", "app:k", "v").stdout.strip() == "OK"
    assert cli(node_cluster, namespace, pod, host, "GET", "app:k").stdout.strip() == "v"
    verified = python_client(node_cluster, namespace, pod, host)
    assert verified.returncode == 0, verified.stderr[-400:]
    assert verified.stdout.strip() == "yes"
