"""Generated material: the CA, certificates, passwords and renamed commands.

Material is created once and then only changed by rotation. ``ensure`` takes
what already exists (loaded from the cluster's Secrets) and fills in only
what is missing, so a resync, an operator restart or a spec edit never
regenerates a CA, a key or a password.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Mapping

from . import acl, credentials, names, pki
from .engines import command_table
from .spec import SecureRedis


@dataclass(frozen=True)
class Credential:
    """A user's passwords and client certificate.

    ``passwords`` are accepted by every server, newest last; the newest is the
    published one. ``pending`` passwords are being added to the servers
    during a rotation and are published only once every server accepts them.
    """

    username: str
    # Left out of repr so a logged or printed Credential shows no password.
    passwords: tuple[str, ...] = field(repr=False)
    client_cert: pki.CertKey | None = None
    pending: tuple[str, ...] = field(default=(), repr=False)
    # When a rotation last published a new password (status timestamp), or "".
    published_at: str = ""

    @property
    def password(self) -> str:
        """Return the newest published password, the one clients are given."""
        return self.passwords[-1]

    @property
    def hashes(self) -> list[str]:
        """Return the SHA-256 of every password a server must accept, pending ones included."""
        return [credentials.password_hash(p) for p in self.passwords + self.pending]


@dataclass(frozen=True)
class Material:
    ca: pki.CertKey
    server: pki.CertKey
    # Application users by user name, system users by role.
    users: Mapping[str, Credential] = field(default_factory=dict)
    system: Mapping[str, Credential] = field(default_factory=dict)
    # Command -> name it is served under; "" means disabled.
    renames: Mapping[str, str] = field(default_factory=dict)
    # PEM bundle of every CA the servers and clients trust. It holds the old
    # and the new CA while a CA rotation is under way, else just ``ca``.
    ca_bundle: str = ""
    # Rotation state by kind ("passwords", "certificates", "ca"), kept with the
    # material so a rotation interrupted by a restart resumes where it was.
    rotations: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # The CA that replaces ``ca`` during a CA rotation, before it signs.
    next_ca: pki.CertKey | None = None

    @property
    def trusted_cas(self) -> str:
        return self.ca_bundle or self.ca.cert_pem


def server_certificate(sr: SecureRedis, ca: pki.CertKey, now: datetime) -> pki.CertKey:
    """Issue the certificate every Redis pod of ``sr`` presents."""
    return pki.make_leaf(
        ca,
        f"{names.client_service(sr.name)}.{sr.namespace}.svc",
        now=now,
        duration=sr.tls.certificate_duration,
        algorithm=sr.tls.key_algorithm,
        dns_names=names.service_dns_names(sr.name, sr.namespace, sr.cluster_domain),
        ip_addresses=("127.0.0.1", "::1"),
    )


def client_certificate(sr: SecureRedis, ca: pki.CertKey, username: str,
                       now: datetime) -> pki.CertKey:
    """Issue a client-only certificate whose common name is the ACL user name."""
    return pki.make_leaf(
        ca, username, now=now, duration=sr.tls.certificate_duration,
        algorithm=sr.tls.key_algorithm, server=False, client=True,
    )


def ensure(sr: SecureRedis, existing: Material | None, *, now: datetime,
           external_passwords: Mapping[str, str] | None = None,
           external_ca: pki.CertKey | None = None) -> Material:
    """Return complete material for ``sr``, generating only what ``existing`` lacks.

    ``external_passwords`` maps a user name to the password read from its
    passwordSecretRef; such users never get a generated password, and when
    that Secret's value changes the new password is appended (the old one is
    removed later by rotation, after the grace period).

    ``external_ca`` is the CA from spec.tls.secretName (issuer ``secret``).
    It becomes the CA only of new material; replacing the CA of existing
    material is a CA rotation (see ``rotation``).
    """
    external_passwords = external_passwords or {}

    if existing:
        ca = existing.ca
    elif external_ca is not None:
        ca = external_ca
    else:
        ca = pki.make_ca(
            f"secure-redis {sr.namespace}/{sr.name} CA",
            now=now, duration=sr.tls.ca_duration, algorithm=sr.tls.key_algorithm,
        )
    server = existing.server if existing else server_certificate(sr, ca, now)

    users = {}
    old_users = existing.users if existing else {}
    for user in sr.users:
        previous = old_users.get(user.name)
        pending = previous.pending if previous else ()
        if previous and previous.passwords:
            passwords = previous.passwords
        elif user.name in external_passwords:
            passwords = (external_passwords[user.name],)
        else:
            passwords = (credentials.generate_password(),)
        external = external_passwords.get(user.name)
        if external is not None and external != passwords[-1] and external not in pending:
            # A changed passwordSecretRef goes through the same sequence as a
            # rotation: on every server first, published after.
            pending = pending + (external,)
        cert = previous.client_cert if previous and previous.client_cert else \
            client_certificate(sr, ca, user.name, now)
        users[user.name] = Credential(user.name, passwords, cert, pending)

    system = {}
    old_system = existing.system if existing else {}
    for system_user in acl.system_users(sr.engine.replication_commands, command_table(sr.version)):
        previous = old_system.get(system_user.role)
        if previous and previous.passwords:
            credential = previous
        else:
            credential = Credential(system_user.name, (credentials.generate_password(),))
        if system_user.role == "operator" and credential.client_cert is None:
            credential = replace(credential,
                                 client_cert=client_certificate(sr, ca, system_user.name, now))
        system[system_user.role] = credential

    renames = {}
    old_renames = existing.renames if existing else {}
    for command, target in sr.renames.items():
        if target == "random":
            previous_name = old_renames.get(command, "")
            # Keep a random name the operator picked before; a name the user
            # chose earlier is not random and is replaced by a fresh one.
            keep = credentials.is_random_command_name(command, previous_name)
            renames[command] = previous_name if keep else credentials.random_command_name(command)
        else:
            renames[command] = target

    return Material(
        ca=ca,
        server=server,
        users=users,
        system=system,
        renames=renames,
        ca_bundle=existing.ca_bundle if existing else "",
        rotations=existing.rotations if existing else {},
        next_ca=existing.next_ca if existing else None,
    )


def _cert_to_dict(cert: pki.CertKey | None) -> dict | None:
    return None if cert is None else {"cert": cert.cert_pem, "key": cert.key_pem}


def _cert_from_dict(raw: Mapping | None) -> pki.CertKey | None:
    return None if not raw else pki.CertKey(raw["cert"], raw["key"])


def _credential_to_dict(credential: Credential) -> dict:
    return {"username": credential.username, "passwords": list(credential.passwords),
            "pending": list(credential.pending),
            "clientCert": _cert_to_dict(credential.client_cert),
            "publishedAt": credential.published_at}


def _credential_from_dict(raw: Mapping) -> Credential:
    return Credential(raw["username"], tuple(raw["passwords"]),
                      _cert_from_dict(raw.get("clientCert")), tuple(raw.get("pending", ())),
                      raw.get("publishedAt", ""))


def to_json(material: Material) -> str:
    """Serialize material for the operator-only state copy kept in Secrets."""
    return json.dumps({
        "version": 1,
        "ca": _cert_to_dict(material.ca),
        "server": _cert_to_dict(material.server),
        "users": {name: _credential_to_dict(c) for name, c in sorted(material.users.items())},
        "system": {role: _credential_to_dict(c) for role, c in sorted(material.system.items())},
        "renames": dict(sorted(material.renames.items())),
        "caBundle": material.ca_bundle,
        "rotations": {kind: dict(state) for kind, state in material.rotations.items()},
        "nextCA": _cert_to_dict(material.next_ca),
    }, sort_keys=True)


def from_json(text: str) -> Material:
    """Parse what ``to_json`` wrote; raises ValueError on anything else."""
    try:
        raw = json.loads(text)
        if raw.get("version") != 1:
            raise ValueError(f"unknown material format version {raw.get('version')!r}")
        return Material(
            ca=_cert_from_dict(raw["ca"]),
            server=_cert_from_dict(raw["server"]),
            users={name: _credential_from_dict(c) for name, c in raw["users"].items()},
            system={role: _credential_from_dict(c) for role, c in raw["system"].items()},
            renames=dict(raw["renames"]),
            ca_bundle=raw.get("caBundle", ""),
            rotations={kind: dict(state) for kind, state in raw.get("rotations", {}).items()},
            next_ca=_cert_from_dict(raw.get("nextCA")),
        )
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"stored material is malformed: {type(error).__name__}") from None
