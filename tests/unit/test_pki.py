"""The CA, server and client certificates built by pki and material."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from secureredis import material, pki, spec
from spec_inputs import NOW, secure_redis, user

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH


def make_ca(algorithm: str = "ECDSA-P256", duration: timedelta = timedelta(days=3650)):
    return pki.make_ca("unit test CA", now=NOW, duration=duration, algorithm=algorithm)


@pytest.fixture(scope="module")
def ca() -> pki.CertKey:
    return make_ca()


@pytest.fixture(scope="module")
def sr():
    return spec.load(secure_redis({"acl": {"users": [user("app_user", "+get")]}},
                                  name="cache", namespace="shop"))


def verify_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    """Raise InvalidSignature unless ``issuer``'s key signed ``cert``."""
    public = issuer.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(cert.signature, cert.tbs_certificate_bytes,
                      ec.ECDSA(cert.signature_hash_algorithm))
    else:
        public.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                      cert.signature_hash_algorithm)


def extended_usages(cert: x509.Certificate) -> list:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def common_name(cert: x509.Certificate) -> str:
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def test_ca_is_ca(ca):
    constraints = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints)

    assert constraints.critical
    assert constraints.value.ca is True
    assert constraints.value.path_length == 0


def test_ca_key_usage(ca):
    usage = ca.certificate.extensions.get_extension_for_class(x509.KeyUsage).value

    assert usage.key_cert_sign
    assert usage.crl_sign


def test_ca_self_signed(ca):
    cert = ca.certificate

    assert cert.issuer == cert.subject
    verify_signed_by(cert, cert)


def test_ca_default_key_is_p256(ca):
    key = ca.certificate.public_key()

    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.curve.name == "secp256r1"


def test_ca_private_key_is_pkcs8(ca):
    assert ca.key_pem.startswith("-----BEGIN PRIVATE KEY-----")


def test_server_chains_to_ca(sr, ca):
    server = material.server_certificate(sr, ca, NOW).certificate

    assert server.issuer == ca.certificate.subject
    verify_signed_by(server, ca.certificate)


def test_server_is_not_ca(sr, ca):
    server = material.server_certificate(sr, ca, NOW).certificate
    constraints = server.extensions.get_extension_for_class(x509.BasicConstraints).value

    assert constraints.ca is False


def test_server_both_usages(sr, ca):
    server = material.server_certificate(sr, ca, NOW).certificate

    assert SERVER_AUTH in extended_usages(server)
    assert CLIENT_AUTH in extended_usages(server)


def test_server_subject_alt_names(sr, ca):
    server = material.server_certificate(sr, ca, NOW).certificate
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns_names = sans.get_values_for_type(x509.DNSName)
    addresses = sans.get_values_for_type(x509.IPAddress)

    assert "cache" in dns_names
    assert "cache.shop" in dns_names
    assert "cache.shop.svc" in dns_names
    assert "cache.shop.svc.cluster.local" in dns_names
    assert "cache-replicas.shop.svc" in dns_names
    assert "*.cache-headless.shop.svc" in dns_names
    assert "*.cache-headless.shop.svc.cluster.local" in dns_names
    assert "localhost" in dns_names
    assert ipaddress.ip_address("127.0.0.1") in addresses


def test_server_names_follow_domain(ca):
    sr = spec.load(secure_redis({"clusterDomain": "corp.example"}, name="cache",
                                namespace="shop"))

    server = material.server_certificate(sr, ca, NOW).certificate
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns_names = sans.get_values_for_type(x509.DNSName)

    assert "*.cache-headless.shop.svc.corp.example" in dns_names
    assert "cache.shop.svc.cluster.local" not in dns_names


def test_client_cert_client_only(sr, ca):
    client = material.client_certificate(sr, ca, "app_user", NOW).certificate

    assert extended_usages(client) == [CLIENT_AUTH]
    assert common_name(client) == "app_user"
    verify_signed_by(client, ca.certificate)


def test_client_cert_has_no_names(sr, ca):
    client = material.client_certificate(sr, ca, "app_user", NOW).certificate

    with pytest.raises(x509.ExtensionNotFound):
        client.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_leaf_not_after_follows_now(ca):
    leaf = pki.make_leaf(ca, "leaf", now=NOW, duration=timedelta(days=30),
                         algorithm="ECDSA-P256")

    assert leaf.not_after == NOW + timedelta(days=30)


def test_leaf_backdated(ca):
    leaf = pki.make_leaf(ca, "leaf", now=NOW, duration=timedelta(days=30),
                         algorithm="ECDSA-P256").certificate

    assert leaf.not_valid_before_utc < NOW
    assert leaf.not_valid_before_utc >= NOW - timedelta(hours=1)


def test_leaf_capped_by_ca():
    short_ca = make_ca(duration=timedelta(days=10))

    leaf = pki.make_leaf(short_ca, "leaf", now=NOW, duration=timedelta(days=90),
                         algorithm="ECDSA-P256")

    assert leaf.not_after == NOW + timedelta(days=10)
    assert leaf.not_after == short_ca.not_after


def test_leaf_serials_differ(ca):
    first = pki.make_leaf(ca, "leaf", now=NOW, duration=timedelta(days=1),
                          algorithm="ECDSA-P256")
    second = pki.make_leaf(ca, "leaf", now=NOW, duration=timedelta(days=1),
                           algorithm="ECDSA-P256")

    assert first.serial != second.serial


def test_rsa_option():
    rsa_ca = make_ca("RSA-2048")

    leaf = pki.make_leaf(rsa_ca, "leaf", now=NOW, duration=timedelta(days=1),
                         algorithm="RSA-2048").certificate
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value

    assert isinstance(leaf.public_key(), rsa.RSAPublicKey)
    assert leaf.public_key().key_size == 2048
    assert usage.key_encipherment
    verify_signed_by(leaf, rsa_ca.certificate)


def test_rsa_spec_gives_rsa_server():
    sr = spec.load(secure_redis({"tls": {"keyAlgorithm": "RSA-2048"}}))

    generated = material.ensure(sr, None, now=NOW)

    assert isinstance(generated.ca.certificate.public_key(), rsa.RSAPublicKey)
    assert isinstance(generated.server.certificate.public_key(), rsa.RSAPublicKey)


def test_unknown_algorithm_rejected():
    with pytest.raises(ValueError):
        pki.generate_key("DSA-1024")


def test_spec_duration_used():
    sr = spec.load(secure_redis({"tls": {"certificateDuration": "48h", "renewBefore": "12h"}}))

    generated = material.ensure(sr, None, now=NOW)

    assert generated.server.not_after == NOW + timedelta(hours=48)
    assert generated.ca.not_after == NOW + timedelta(days=3650)


@pytest.mark.parametrize("number,text", [(0x0A, "0A"), (0xABC, "0ABC"), (0x1F2E, "1F2E")])
def test_serial_formatted_like_openssl(number, text):
    assert pki.serial_hex(number) == text
