"""Certificate authority and leaf certificates, built with ``cryptography``.

Everything here is pure apart from drawing random keys: the caller passes the
current time, so renewal logic and tests control the clock.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Certificates are valid from slightly in the past so a node whose clock runs
# a little behind still accepts a certificate issued a moment ago.
BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class CertKey:
    """A PEM certificate and its PEM (PKCS#8) private key."""

    cert_pem: str
    # Left out of repr so a logged or printed CertKey shows no private key.
    key_pem: str = field(repr=False)

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem.encode())

    @property
    def serial(self) -> str:
        return serial_hex(self.certificate.serial_number)

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc


def serial_hex(number: int) -> str:
    """Format a certificate serial the way ``openssl x509 -serial`` prints it."""
    digits = format(number, "X")
    return digits.zfill(len(digits) + len(digits) % 2)


# X.509 caps a common name at 64 characters. Names are checked through the
# SANs, so the common name is only a label and may be shortened.
MAX_COMMON_NAME = 64


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:MAX_COMMON_NAME])])


def generate_key(algorithm: str):
    """Return a new private key for ``ECDSA-P256`` or ``RSA-<bits>``."""
    if algorithm == "ECDSA-P256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm.startswith("RSA-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(algorithm[4:]))
    raise ValueError(f"unsupported key algorithm {algorithm!r}")


def _key_pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def make_ca(common_name: str, *, now: datetime, duration: timedelta, algorithm: str) -> CertKey:
    """Create a self-signed CA that may sign leaves but no further CAs."""
    key = generate_key(algorithm)
    name = _name(common_name)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + duration)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False,
        ), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertKey(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))


def make_leaf(ca: CertKey, common_name: str, *, now: datetime, duration: timedelta,
              algorithm: str, dns_names: tuple[str, ...] = (), ip_addresses: tuple[str, ...] = (),
              server: bool = True, client: bool = True) -> CertKey:
    """Create a leaf certificate signed by ``ca``.

    Server certificates carry both usages: Redis presents its server
    certificate as the client certificate on outgoing replication and cluster
    bus links.
    """
    ca_cert = ca.certificate
    ca_key = serialization.load_pem_private_key(ca.key_pem.encode(), password=None)
    key = generate_key(algorithm)
    public = key.public_key()

    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    is_rsa = algorithm.startswith("RSA-")

    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + duration, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_encipherment=is_rsa, key_agreement=not is_rsa,
            content_commitment=False, data_encipherment=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False,
        ), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
            critical=False,
        )
    )
    sans = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return CertKey(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))


def _is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def load_ca(cert_pem: str, key_pem: str, chain_pem: str = "", *, now: datetime) -> CertKey:
    """Check a CA brought by the user and return it as a CertKey that may sign leaves.

    ``cert_pem`` starts with the signing CA certificate and may go on with
    its issuers; ``chain_pem`` (the Secret's ca.crt) adds more of them. The
    returned ``cert_pem`` contains the CA followed by every issuer up to a
    self-signed root, each once, because Redis only trusts a chain that ends
    in a root it holds. Raises ValueError naming the Secret key to fix.
    """
    try:
        certs = x509.load_pem_x509_certificates(cert_pem.encode())
    except ValueError:
        raise ValueError("tls.crt contains no PEM certificate") from None
    try:
        chain = x509.load_pem_x509_certificates(chain_pem.encode()) if chain_pem.strip() else []
    except ValueError:
        raise ValueError("ca.crt contains no PEM certificate") from None
    ca = certs[0]

    constraints = _extension(ca, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        raise ValueError("tls.crt is not a CA certificate (it lacks basicConstraints CA:TRUE); "
                         "put a CA that may sign certificates there, not a server certificate")
    usage = _extension(ca, x509.KeyUsage)
    if usage is not None and not usage.key_cert_sign:
        raise ValueError("the CA in tls.crt may not sign certificates (keyUsage lacks "
                         "keyCertSign)")
    if not ca.not_valid_before_utc <= now < ca.not_valid_after_utc:
        raise ValueError(f"the CA in tls.crt is valid only from {ca.not_valid_before_utc:%Y-%m-%d} "
                         f"to {ca.not_valid_after_utc:%Y-%m-%d}; put a currently valid CA there")

    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("tls.key contains no unencrypted PEM private key; store the CA key "
                         "without a passphrase, for example with openssl pkey -in "
                         "encrypted.key -out tls.key") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise ValueError("tls.key must be an ECDSA or RSA key")
    if key.public_key().public_bytes(serialization.Encoding.DER,
                                     serialization.PublicFormat.SubjectPublicKeyInfo) != \
            ca.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo):
        raise ValueError("tls.key does not belong to the certificate in tls.crt; put the "
                         "CA's own private key in tls.key")

    ordered = [ca]
    pool = [c for c in certs[1:] + chain if c != ca]
    while not _is_self_signed(ordered[-1]):
        issuer = next((c for c in pool if c not in ordered and c.subject == ordered[-1].issuer),
                      None)
        if issuer is None:
            raise ValueError(f"no issuer of {ordered[-1].subject.rfc4514_string()} found; add "
                             "the chain up to the self-signed root as ca.crt")
        try:
            ordered[-1].verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise ValueError(f"{issuer.subject.rfc4514_string()} in ca.crt did not sign "
                             f"{ordered[-1].subject.rfc4514_string()}; fix the chain in "
                             "ca.crt") from None
        ordered.append(issuer)

    for depth, issuer in enumerate(ordered[1:], start=1):
        # An issuer at index n of the chain has n CA certificates below it on
        # the path to a leaf, so RFC 5280 requires its pathLen to be at least n.
        limit = _extension(issuer, x509.BasicConstraints)
        if limit is not None and limit.path_length is not None and limit.path_length < depth:
            raise ValueError(f"{issuer.subject.rfc4514_string()} allows {limit.path_length} "
                             f"CAs below it (pathLen) but the chain has {depth}; use a CA "
                             "whose issuers allow it")
        if not issuer.not_valid_before_utc <= now < issuer.not_valid_after_utc:
            raise ValueError(f"{issuer.subject.rfc4514_string()} in the chain is valid only "
                             f"from {issuer.not_valid_before_utc:%Y-%m-%d} to "
                             f"{issuer.not_valid_after_utc:%Y-%m-%d}; renew it in ca.crt")

    pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in ordered)
    return CertKey(pem, _key_pem(key))


def _extension(cert: x509.Certificate, kind):
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
