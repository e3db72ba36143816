"""Generated material: the CA, certificates, passwords and renamed commands.

Material is created once and then only changed by rotation. ``ensure`` takes
what already exists (loaded from the cluster's Secrets) and fills in only
what is missing, so a resync, an operator restart or a spec edit never
regenerates a CA, a key or a password.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Mapping

from . import acl, credentials, names, pki
from .engines import command_table
from .spec import SecureRedis


@dataclass(frozen=True)
class Credential:
    """A user's passwords (newest last, all accepted) and client certificate."""

    username: str
    passwords: tuple[str, ...]
    client_cert: pki.CertKey | None = None

    @property
    def password(self) -> str:
        """Return the newest password, the one clients are given."""
        return self.passwords[-1]

    @property
    def hashes(self) -> list[str]:
        return [credentials.password_hash(p) for p in self.passwords]


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
           external_passwords: Mapping[str, str] | None = None) -> Material:
    """Return complete material for ``sr``, generating only what ``existing`` lacks.

    ``external_passwords`` maps a user name to the password read from its
    passwordSecretRef; such users never get a generated password, and when
    that Secret's value changes the new password is appended (the old one is
    removed later by rotation, after the grace period).
    """
    external_passwords = external_passwords or {}

    ca = existing.ca if existing else pki.make_ca(
        f"secure-redis {sr.namespace}/{sr.name} CA",
        now=now, duration=sr.tls.ca_duration, algorithm=sr.tls.key_algorithm,
    )
    server = existing.server if existing else server_certificate(sr, ca, now)

    users = {}
    old_users = existing.users if existing else {}
    for user in sr.users:
        previous = old_users.get(user.name)
        if user.name in external_passwords:
            passwords = _with_external(previous, external_passwords[user.name])
        elif previous and previous.passwords:
            passwords = previous.passwords
        else:
            passwords = (credentials.generate_password(),)
        cert = previous.client_cert if previous and previous.client_cert else \
            client_certificate(sr, ca, user.name, now)
        users[user.name] = Credential(user.name, passwords, cert)

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
            keep = previous_name.startswith(f"{command.upper()}_") and len(previous_name) > 40
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
    )


def _with_external(previous: Credential | None, password: str) -> tuple[str, ...]:
    if previous is None or not previous.passwords:
        return (password,)
    if previous.passwords[-1] == password:
        return previous.passwords
    return tuple(p for p in previous.passwords if p != password) + (password,)
