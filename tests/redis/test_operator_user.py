"""The operator's own user can run what reconciliation and rotation need, and nothing else."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis
from cryptography import x509

from secureredis import credentials, material
from secureredis.material import Credential

from redis_harness import Secret, open_tls, remember_secrets, tls_context, write_private_file

pytestmark = pytest.mark.redis

# Calls the operator makes, with harmless arguments. "CONFIG" stands for
# the renamed CONFIG command.
ALLOWED_CALLS = {
    "ping": ("PING",),
    "info": ("INFO", "server"),
    "role": ("ROLE",),
    "client-list": ("CLIENT", "LIST"),
    "client-setname": ("CLIENT", "SETNAME", "secure-redis-operator"),
    "acl-whoami": ("ACL", "WHOAMI"),
    "acl-users": ("ACL", "USERS"),
    "acl-list": ("ACL", "LIST"),
    "acl-log": ("ACL", "LOG"),
    "acl-getuser": ("ACL", "GETUSER", "cache_reader"),
    "config-get": ("CONFIG", "GET", "maxmemory"),
    "config-set": ("CONFIG", "SET", "slowlog-max-len", "32"),
    "slowlog-get": ("SLOWLOG", "GET", "10"),
    "slowlog-len": ("SLOWLOG", "LEN"),
    "wait": ("WAIT", "0", "0"),
    "replicaof-no-one": ("REPLICAOF", "NO", "ONE"),
    "acl-cat": ("ACL", "CAT", "dangerous"),
    "acl-dryrun": ("ACL", "DRYRUN", "cache_reader", "GET", "cache:x"),
    "command-info": ("COMMAND", "INFO", "get"),
    # MIGRATE runs SELECT on the target as the operator user.
    "select": ("SELECT", "0"),
}

# Calls outside the operator's job: data access, persistence, scripting,
# other clients, and ACL or CONFIG subcommands it was not granted.
DENIED_CALLS = {
    "get": ("GET", "app:owned"),
    "set": ("SET", "app:owned", "changed"),
    "del": ("DEL", "app:owned"),
    "scan": ("SCAN", "0"),
    "keys": ("KEYS", "*"),
    "dbsize": ("DBSIZE",),
    "eval": ("EVAL", "return 1", "0"),
    "function-list": ("FUNCTION", "LIST"),
    "publish": ("PUBLISH", "news", "hello"),
    "save": ("SAVE",),
    "bgsave": ("BGSAVE",),
    "bgrewriteaof": ("BGREWRITEAOF",),
    "monitor": ("MONITOR",),
    "client-kill": ("CLIENT", "KILL", "ID", "999999"),
    "client-pause": ("CLIENT", "PAUSE", "1"),
    "acl-deluser": ("ACL", "DELUSER", "cache_reader"),
    "acl-load": ("ACL", "LOAD"),
    "acl-save": ("ACL", "SAVE"),
    "config-rewrite": ("CONFIG", "REWRITE"),
    "config-resetstat": ("CONFIG", "RESETSTAT"),
    "slowlog-reset": ("SLOWLOG", "RESET"),
}


def with_renames(server, call: tuple[str, ...]) -> tuple[str, ...]:
    """Replace a renamed command in ``call`` by the name the server serves it under."""
    new_name = server.material.renames.get(call[0].lower())
    return (new_name, *call[1:]) if new_name else call


@pytest.mark.parametrize("call", ALLOWED_CALLS.values(), ids=ALLOWED_CALLS.keys())
def test_operator_runs_needed_command(server, operator_client, call):
    operator_client.execute_command(*with_renames(server, call))


@pytest.mark.parametrize("call", DENIED_CALLS.values(), ids=DENIED_CALLS.keys())
def test_operator_denied_other_command(server, operator_client, call):
    with pytest.raises(redis.exceptions.NoPermissionError) as failure:
        operator_client.execute_command(*with_renames(server, call))
    assert "no permissions to run the" in str(failure.value)


def test_operator_creates_user(operator_client):
    assert operator_client.acl_setuser("scratch", enabled=False) is True
    user = operator_client.acl_getuser("scratch")
    assert user["flags"] == ["off"]
    assert user["passwords"] == []


def test_operator_rotates_password(server, operator_client):
    # Passwords stay inside Credential objects, whose repr leaves them out, and
    # out of assert expressions, whose failure report shows call arguments.
    current = server.credential("app_service")
    rotated = Credential("app_service", (credentials.generate_password(),))
    remember_secrets([Secret("rotated password of app_service", rotated.password)])
    tls_files = server.client_files["app_service"]

    # The password travels as one protocol argument, never through a shell.
    operator_client.execute_command("ACL", "SETUSER", "app_service", f">{rotated.password}")
    with_new = server.connect("app_service", rotated.password, tls_files=tls_files)
    with_current = server.connect("app_service", current.password, tls_files=tls_files)
    assert with_new.ping() is True
    assert with_current.ping() is True

    operator_client.execute_command("ACL", "SETUSER", "app_service", f"<{rotated.password}")
    with_removed = server.connect("app_service", rotated.password, tls_files=tls_files)
    with_current_again = server.connect("app_service", current.password, tls_files=tls_files)
    with pytest.raises(redis.AuthenticationError):
        with_removed.ping()
    assert with_current_again.ping() is True


def test_operator_sets_masterauth(server, operator_client):
    replication = server.credential("replication")
    reply = operator_client.execute_command(server.renamed("config"), "SET", "masterauth",
                                            replication.password)
    assert reply == "OK"


def test_operator_reloads_tls_certificate(server, operator_client):
    renewed = material.server_certificate(server.sr, server.material.ca,
                                          datetime.now(timezone.utc))
    write_private_file(Path(server.paths.cert_file), renewed.cert_pem)
    write_private_file(Path(server.paths.key_file), renewed.key_pem)

    reply = operator_client.execute_command(
        server.renamed("config"), "SET",
        "tls-cert-file", server.paths.cert_file,
        "tls-key-file", server.paths.key_file,
        "tls-ca-cert-file", server.paths.ca_file,
    )
    assert reply == "OK"

    context = tls_context(server, tls_files=server.server_files)
    with open_tls(server, context) as tls:
        presented = tls.getpeercert(binary_form=True)
    serial = x509.load_der_x509_certificate(presented).serial_number
    assert serial == renewed.certificate.serial_number
    assert serial != server.material.server.certificate.serial_number
