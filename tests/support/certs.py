"""A small external PKI for tests of ``spec.tls.issuer: secret``.

The operator's own CAs are self-signed with a path length of 0, so they
cannot stand in for a company root that signs an intermediate. These
builders make such a root and intermediates under it, the way a user's PKI
(or a cert-manager CA issuer) hands them over.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from secureredis import pki


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def make_authority(common_name: str, *, now: datetime, signer: pki.CertKey | None = None,
                   duration: timedelta = timedelta(days=365), is_ca: bool = True,
                   path_length: int | None = None, key_cert_sign: bool = True) -> pki.CertKey:
    """Return a root (no ``signer``) or an intermediate signed by ``signer``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    if signer is None:
        issuer, signing_key = subject, key
    else:
        issuer = signer.certificate.subject
        signing_key = serialization.load_pem_private_key(signer.key_pem.encode(), password=None)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + duration)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_length if is_ca else None),
                       critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=key_cert_sign, crl_sign=key_cert_sign,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(signing_key, hashes.SHA256())
    )
    return pki.CertKey(_pem(cert), _key_pem(key))


def company_pki(now: datetime) -> tuple[pki.CertKey, pki.CertKey]:
    """Return a root and an intermediate it signed, the intermediate being for Redis."""
    root = make_authority("Example Corp Root", now=now, duration=timedelta(days=3650))
    intermediate = make_authority("Example Corp Redis CA", now=now, signer=root, path_length=0)
    return root, intermediate


def tls_secret_data(ca: pki.CertKey, chain: pki.CertKey | None = None) -> dict[str, str]:
    """Return the data of a kubernetes.io/tls Secret that names ``ca`` as the signer."""
    data = {"tls.crt": ca.cert_pem, "tls.key": ca.key_pem}
    if chain is not None:
        data["ca.crt"] = chain.cert_pem
    return data
