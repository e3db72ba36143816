"""spec.tls.issuer: secret against a real API server: the user's CA signs everything.

The test plays the platform team: it keeps a company root and an
intermediate for Redis in a kubernetes.io/tls Secret, the way a cert-manager
CA issuer or a PKI pipeline hands one over.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone

import pytest
from cryptography import x509

from secureredis import names
from support.certs import company_pki, make_authority, tls_secret_data
from support.cluster import wait_until
from support.operator import condition, events, get, secure_redis, wait_for_condition

pytestmark = pytest.mark.integration

NAME = "cache"
CA_SECRET = "corp-redis-ca"
SPEC = {"tls": {"issuer": "secret", "secretName": CA_SECRET},
        "acl": {"users": [{"name": "app", "rules": ["~app:*", "+get"]}]}}


def put_ca_secret(cluster, namespace, data: dict[str, str]) -> None:
    # The API server insists on both keys in a kubernetes.io/tls Secret.
    kind = "kubernetes.io/tls" if "tls.key" in data and "tls.crt" in data else "Opaque"
    cluster.apply({"apiVersion": "v1", "kind": "Secret", "type": kind,
                   "metadata": {"name": CA_SECRET}, "stringData": data}, namespace=namespace)


def secret_certificates(cluster, namespace, secret: str, key: str) -> list[x509.Certificate]:
    data = get(cluster, namespace, "secret", secret)["data"]
    return x509.load_pem_x509_certificates(base64.b64decode(data[key]))


def test_missing_secret_stalls_then_recovers(control_plane, namespace, operator):
    control_plane.apply(secure_redis(NAME, SPEC), namespace=namespace)
    obj = wait_for_condition(control_plane, namespace, NAME, "Stalled", "True")
    assert "spec.tls.secretName" in condition(obj, "Stalled")["message"]
    assert CA_SECRET in condition(obj, "Stalled")["message"]
    assert get(control_plane, namespace, "secret", names.ca_secret(NAME)) is None

    root, intermediate = company_pki(datetime.now(timezone.utc))
    put_ca_secret(control_plane, namespace, tls_secret_data(intermediate, chain=root))
    wait_for_condition(control_plane, namespace, NAME, "Stalled", "False")

    wait_until(lambda: get(control_plane, namespace, "secret",
                           names.user_secret(NAME, "app")) is not None, 30, message="user Secret")
    trusted = secret_certificates(control_plane, namespace, names.tls_secret(NAME), "ca.crt")
    assert [c.subject for c in trusted] == [intermediate.certificate.subject,
                                            root.certificate.subject]
    server = secret_certificates(control_plane, namespace, names.tls_secret(NAME), "tls.crt")[0]
    server.verify_directly_issued_by(intermediate.certificate)
    client = secret_certificates(control_plane, namespace, names.user_secret(NAME, "app"),
                                 "tls.crt")[0]
    client.verify_directly_issued_by(intermediate.certificate)
    user_trust = secret_certificates(control_plane, namespace, names.user_secret(NAME, "app"),
                                     "ca.crt")
    assert root.certificate.subject in [c.subject for c in user_trust]
    # Nothing existed before the stall, so nothing counts as lost or re-created.
    assert events(control_plane, namespace, "MaterialLost") == []
    assert events(control_plane, namespace, "ChildRecreated") == []


@pytest.mark.parametrize("case", ["leaf", "no-key", "no-chain"])
def test_unusable_secret_stalls_naming_the_fix(control_plane, namespace, operator, case):
    now = datetime.now(timezone.utc)
    root, intermediate = company_pki(now)
    if case == "leaf":
        leaf = make_authority("redis.example", now=now, signer=root, is_ca=False)
        data, expected = tls_secret_data(leaf, chain=root), "not a CA certificate"
    elif case == "no-key":
        data, expected = {"tls.crt": root.cert_pem}, "has no tls.key"
    else:
        data, expected = tls_secret_data(intermediate), "add the chain up to the self-signed root"
    put_ca_secret(control_plane, namespace, data)

    control_plane.apply(secure_redis(NAME, SPEC), namespace=namespace)
    obj = wait_for_condition(control_plane, namespace, NAME, "Stalled", "True")

    message = condition(obj, "Stalled")["message"]
    assert "spec.tls.secretName" in message
    assert expected in message
    assert "PRIVATE KEY" not in message
    assert any(expected in e["message"] for e in events(control_plane, namespace, "InvalidSpec"))
    assert get(control_plane, namespace, "secret", names.ca_secret(NAME)) is None


def test_replaced_ca_starts_a_rotation(control_plane, namespace, operator):
    now = datetime.now(timezone.utc)
    root, intermediate = company_pki(now)
    put_ca_secret(control_plane, namespace, tls_secret_data(intermediate, chain=root))
    control_plane.apply(secure_redis(NAME, SPEC), namespace=namespace)
    wait_for_condition(control_plane, namespace, NAME, "Stalled", "False")

    successor = make_authority("Example Corp Redis CA 2", now=now, signer=root, path_length=0)
    put_ca_secret(control_plane, namespace, tls_secret_data(successor, chain=root))

    def ca_phase() -> str | None:
        obj = get(control_plane, namespace, "secureredis", NAME)
        for entry in (obj.get("status") or {}).get("rotations") or []:
            if entry["kind"] == "ca":
                return entry["phase"]
        return None

    wait_until(lambda: ca_phase() == "TrustBoth", 30, message="CA rotation TrustBoth")
    started = events(control_plane, namespace, "RotationTrustBoth")
    assert any("spec.tls.secretName" in e["message"] for e in started)
    # Until every server trusts it, the successor signs nothing but is trusted.
    wait_until(lambda: successor.certificate.subject in [
        c.subject for c in secret_certificates(control_plane, namespace, names.tls_secret(NAME),
                                               "ca.crt")], 30, message="successor trusted")
    server = secret_certificates(control_plane, namespace, names.tls_secret(NAME), "tls.crt")[0]
    server.verify_directly_issued_by(intermediate.certificate)
