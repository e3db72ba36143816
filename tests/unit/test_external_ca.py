"""A CA the user brings (spec.tls.issuer: secret): checks, first use and rotation."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509

from secureredis import conditions, material, pki, reconcile, rotation, spec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for `support`
from support.certs import company_pki, make_authority  # noqa: E402

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
EVERYWHERE = rotation.Convergence(all_pods=True, acl_synced=True,
                                  serving_current_certificate=True, trusts_next_ca=True,
                                  rejects_previous_ca=True)


@pytest.fixture(scope="module")
def corp():
    return company_pki(T0)


@pytest.fixture(scope="module")
def sr():
    return spec.load({"metadata": {"name": "cache", "namespace": "ns"}, "spec": {
        "tls": {"issuer": "secret", "secretName": "corp-ca"},
        "acl": {"users": [{"name": "app", "rules": ["~app:*", "+get"]}],
                "rotation": {"gracePeriod": "1h"}}}})


def subjects(pem: str) -> list[str]:
    return [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(pem.encode())]


def test_self_signed_ca_is_taken_as_is():
    root = make_authority("Team Root", now=T0)
    loaded = pki.load_ca(root.cert_pem, root.key_pem, now=T0)
    assert loaded.cert_pem == root.cert_pem


@pytest.mark.parametrize("where", ["ca.crt", "tls.crt"])
def test_intermediate_gets_chain_to_root(corp, where):
    root, intermediate = corp
    if where == "ca.crt":
        loaded = pki.load_ca(intermediate.cert_pem, intermediate.key_pem, root.cert_pem, now=T0)
    else:
        loaded = pki.load_ca(intermediate.cert_pem + root.cert_pem, intermediate.key_pem, now=T0)
    assert subjects(loaded.cert_pem) == ["CN=Example Corp Redis CA", "CN=Example Corp Root"]
    # The key is the intermediate's: it signs the leaves.
    assert loaded.certificate.subject == intermediate.certificate.subject


def invalid_cases():
    root = make_authority("Root", now=T0)
    other_root = make_authority("Other Root", now=T0)
    intermediate = make_authority("Intermediate", now=T0, signer=root, path_length=0)
    leaf = make_authority("redis.example", now=T0, signer=root, is_ca=False)
    no_sign = make_authority("No Sign", now=T0, key_cert_sign=False)
    expired = make_authority("Expired", now=T0 - timedelta(days=30), duration=timedelta(days=1))
    forged = make_authority("Root", now=T0)  # same name as root, other key

    strict_root = make_authority("Strict Root", now=T0, path_length=0)
    under_strict = make_authority("Under Strict", now=T0, signer=strict_root, path_length=0)
    old_root = make_authority("Old Root", now=T0 - timedelta(days=30), duration=timedelta(days=1))
    under_old = make_authority("Under Old", now=T0 - timedelta(days=30), signer=old_root,
                               duration=timedelta(days=365), path_length=0)

    return [
        ("not-pem", "not a certificate", root.key_pem, "", "tls.crt contains no PEM certificate"),
        ("leaf", leaf.cert_pem, leaf.key_pem, root.cert_pem, "not a CA certificate"),
        ("no-keycertsign", no_sign.cert_pem, no_sign.key_pem, "", "keyCertSign"),
        ("expired", expired.cert_pem, expired.key_pem, "", "valid only from"),
        ("wrong-key", root.cert_pem, other_root.key_pem, "", "does not belong"),
        ("bad-key", root.cert_pem, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
         "", "tls.key contains no unencrypted PEM private key"),
        ("no-chain", intermediate.cert_pem, intermediate.key_pem, "", "add the chain"),
        ("unrelated-chain", intermediate.cert_pem, intermediate.key_pem, other_root.cert_pem,
         "add the chain"),
        ("forged-chain", intermediate.cert_pem, intermediate.key_pem, forged.cert_pem,
         "did not sign"),
        ("bad-chain-pem", intermediate.cert_pem, intermediate.key_pem, "garbage\n",
         "ca.crt contains no PEM certificate"),
        ("path-length", under_strict.cert_pem, under_strict.key_pem, strict_root.cert_pem,
         "pathLen"),
        ("expired-root", under_old.cert_pem, under_old.key_pem, old_root.cert_pem,
         "in the chain is valid only"),
    ]


@pytest.mark.parametrize("case", invalid_cases(), ids=lambda case: case[0])
def test_unusable_ca_rejected(case):
    _, cert_pem, key_pem, chain_pem, message = case
    with pytest.raises(ValueError) as failure:
        pki.load_ca(cert_pem, key_pem, chain_pem, now=T0)
    assert message in str(failure.value)
    assert "PRIVATE KEY" not in str(failure.value)


def test_new_material_signed_by_users_ca(sr, corp):
    root, intermediate = corp
    ca = pki.load_ca(intermediate.cert_pem, intermediate.key_pem, root.cert_pem, now=T0)

    generated = material.ensure(sr, None, now=T0, external_ca=ca)

    assert generated.ca.cert_pem == ca.cert_pem
    issuer = intermediate.certificate
    for cert in (generated.server, generated.users["app"].client_cert,
                 generated.system["operator"].client_cert):
        cert.certificate.verify_directly_issued_by(issuer)
    # Clients and servers trust the intermediate and the root.
    assert subjects(generated.trusted_cas) == ["CN=Example Corp Redis CA", "CN=Example Corp Root"]


def test_existing_material_keeps_its_ca(sr, corp):
    root, intermediate = corp
    ca = pki.load_ca(intermediate.cert_pem, intermediate.key_pem, root.cert_pem, now=T0)
    first = material.ensure(sr, None, now=T0, external_ca=ca)
    other = make_authority("Another CA", now=T0)

    again = material.ensure(sr, first, now=T0, external_ca=other)

    assert again.ca.cert_pem == first.ca.cert_pem


def test_unchanged_secret_starts_nothing(sr, corp):
    root, intermediate = corp
    ca = pki.load_ca(intermediate.cert_pem, intermediate.key_pem, root.cert_pem, now=T0)
    first = material.ensure(sr, None, now=T0, external_ca=ca)
    late = ca.not_after - timedelta(days=1)

    planned, steps = rotation.plan(sr, first, annotations={rotation.ROTATE_CA_ANNOTATION: "1"},
                                   now=late, external_ca=ca)

    assert rotation.state(planned, rotation.CA)["phase"] == rotation.IDLE
    assert "nextDue" not in rotation.state(planned, rotation.CA)
    assert not [s for s in steps if s.kind == rotation.CA]


def test_replaced_ca_rotates(sr, corp):
    root, intermediate = corp
    old = pki.load_ca(intermediate.cert_pem, intermediate.key_pem, root.cert_pem, now=T0)
    start = material.ensure(sr, None, now=T0, external_ca=old)
    start, _ = rotation.plan(sr, start, annotations={}, now=T0, external_ca=old)
    successor = make_authority("Example Corp Redis CA 2", now=T0, signer=root, path_length=0)
    new = pki.load_ca(successor.cert_pem, successor.key_pem, root.cert_pem, now=T0)

    trust, steps = rotation.plan(sr, start, annotations={}, now=T0, external_ca=new)
    assert rotation.state(trust, rotation.CA)["phase"] == "TrustBoth"
    assert rotation.state(trust, rotation.CA)["trigger"] == "secretName"
    assert trust.next_ca.cert_pem == new.cert_pem
    assert trust.ca.cert_pem == old.cert_pem
    assert "spec.tls.secretName" in steps[-1].message

    trusted, _ = rotation.advance(sr, trust, EVERYWHERE, now=T0)
    reissued, _ = rotation.advance(sr, trusted, EVERYWHERE, now=T0 + timedelta(hours=2))
    assert reissued.ca.cert_pem == new.cert_pem
    reissued.server.certificate.verify_directly_issued_by(successor.certificate)

    # The reconciles during the rotation pass the same CA again, which restarts nothing.
    serving, _ = rotation.advance(sr, reissued, EVERYWHERE, now=T0 + timedelta(hours=2))
    dropping, _ = rotation.plan(sr, serving, annotations={}, now=T0 + timedelta(hours=4),
                                external_ca=new)
    assert rotation.state(dropping, rotation.CA)["phase"] == "Dropping"
    assert dropping.trusted_cas == new.cert_pem

    done, _ = rotation.advance(sr, dropping, EVERYWHERE, now=T0 + timedelta(hours=4))
    idle, steps = rotation.plan(sr, done, annotations={}, now=T0 + timedelta(hours=5),
                                external_ca=new)
    assert rotation.state(idle, rotation.CA)["phase"] == rotation.IDLE
    assert not [s for s in steps if s.kind == rotation.CA]


def test_capped_certificate_not_reissued(sr):
    short = make_authority("Short-lived CA", now=T0, duration=timedelta(days=20))
    ca = pki.load_ca(short.cert_pem, short.key_pem, now=T0)
    generated = material.ensure(sr, None, now=T0, external_ca=ca)
    # The leaf is capped at the CA's end, which is inside renewBefore (30 days).
    assert generated.server.not_after == ca.not_after

    planned, steps = rotation.plan(sr, generated, annotations={}, now=T0, external_ca=ca)

    assert rotation.state(planned, rotation.CERTIFICATES)["phase"] == rotation.IDLE
    assert planned.server.cert_pem == generated.server.cert_pem
    assert not steps


def test_status_asks_for_new_ca(sr):
    short = make_authority("Short-lived CA", now=T0, duration=timedelta(days=20))
    ca = pki.load_ca(short.cert_pem, short.key_pem, now=T0)
    generated = material.ensure(sr, None, now=T0, external_ca=ca)

    status = reconcile.compute_status(sr, generated, None, [], {}, generation=1, now=T0)

    tls = conditions.find(status["conditions"], conditions.TLS_READY)
    assert tls["reason"] == "CAExpiring"
    assert "corp-ca" in tls["message"]
    assert "spec.tls.secretName" in tls["message"]


def switch_and_reissue(sr, old: pki.CertKey, new: pki.CertKey):
    """Return the material once a rotation from ``old`` to ``new`` reached Reissued."""
    start = material.ensure(sr, None, now=T0, external_ca=old)
    start, _ = rotation.plan(sr, start, annotations={}, now=T0, external_ca=old)
    trust, _ = rotation.plan(sr, start, annotations={}, now=T0, external_ca=new)
    trusted, _ = rotation.advance(sr, trust, EVERYWHERE, now=T0)
    reissued, _ = rotation.advance(sr, trusted, EVERYWHERE, now=T0 + timedelta(hours=2))
    assert rotation.state(reissued, rotation.CA)["phase"] == "Reissued"
    return reissued


def test_signing_old_root_not_dropped(sr):
    # A team moves from a self-signed CA to an intermediate under it.
    old_root = make_authority("Team Root", now=T0)
    old = pki.load_ca(old_root.cert_pem, old_root.key_pem, now=T0)
    successor = make_authority("Team Redis CA", now=T0, signer=old_root, path_length=0)
    new = pki.load_ca(successor.cert_pem, successor.key_pem, old_root.cert_pem, now=T0)

    reissued = switch_and_reissue(sr, old, new)

    assert rotation.previous_ca(reissued).cert_pem == old.cert_pem
    assert rotation.previous_ca_to_drop(reissued) is None


def test_replaced_sibling_ca_is_dropped(sr, corp):
    root, intermediate = corp
    old = pki.load_ca(intermediate.cert_pem, intermediate.key_pem, root.cert_pem, now=T0)
    successor = make_authority("Example Corp Redis CA 3", now=T0, signer=root, path_length=0)
    new = pki.load_ca(successor.cert_pem, successor.key_pem, root.cert_pem, now=T0)

    reissued = switch_and_reissue(sr, old, new)

    assert rotation.previous_ca_to_drop(reissued).cert_pem == old.cert_pem
