"""Denials reach ACL LOG, where the operator user can read them."""

from __future__ import annotations

import pytest
import redis

from redis_harness import send_raw

pytestmark = pytest.mark.redis


@pytest.fixture
def acl_log(operator_client):
    """Clear ACL LOG, then return a function that reads its entries as the operator."""
    assert operator_client.acl_log_reset() is True
    return operator_client.acl_log


def entries_for(log: list[dict], username: str, reason: str) -> list[dict]:
    return [entry for entry in log if entry["username"] == username and entry["reason"] == reason]


def test_command_denial_logged(server, acl_log):
    with pytest.raises(redis.exceptions.NoPermissionError):
        server.client("cache_reader").set("cache:new", "value")

    entries = entries_for(acl_log(), "cache_reader", "command")
    assert len(entries) == 1
    assert entries[0]["object"] == "set"
    assert entries[0]["context"] == "toplevel"
    assert " user=cache_reader " in entries[0]["client-info"]


def test_key_denial_logged(server, acl_log):
    with pytest.raises(redis.exceptions.NoPermissionError):
        server.client("cache_reader").get("other:secret")

    entries = entries_for(acl_log(), "cache_reader", "key")
    assert len(entries) == 1
    assert entries[0]["object"] == "other:secret"


def test_dangerous_command_denial_logged(server, acl_log):
    with pytest.raises(redis.exceptions.NoPermissionError):
        server.client("app_service").execute_command(server.renamed("keys"), "*")

    entries = entries_for(acl_log(), "app_service", "command")
    assert len(entries) == 1
    # ACL LOG names the command by its original name, not the renamed one.
    assert entries[0]["object"] == "keys"


def test_failed_login_logged(server, acl_log):
    replies = send_raw(server, ("AUTH", "default", "not-the-password-of-anyone"))
    assert replies[0].startswith(b"-WRONGPASS ")

    entries = entries_for(acl_log(), "default", "auth")
    assert len(entries) == 1
    assert entries[0]["object"] == "AUTH"


def test_acl_log_keeps_no_password(server, acl_log):
    credential = server.credential("cache_reader")
    with pytest.raises(redis.exceptions.NoPermissionError):
        server.client("cache_reader").execute_command("ECHO", credential.password)

    log = acl_log()
    assert len(entries_for(log, "cache_reader", "command")) == 1
    # A bare boolean, so a failure report cannot show the password.
    leaked = credential.password in repr(log)
    assert not leaked, "ACL LOG contains the password of cache_reader"
