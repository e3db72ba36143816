"""Application users as the hardening guide shapes them, checked on a live server.

``cache_reader`` has ``~cache:*`` and six read commands. ``app_service`` has
``~app:*`` and ``+@all``; it is not an admin, so the operator appends
``-@dangerous`` to its rules.
"""

from __future__ import annotations

import pytest
import redis

pytestmark = pytest.mark.redis

# The commands the checklist wants out of reach, with arguments that pass
# the arity check so the server gets as far as its permission checks.
CHECKLIST_CALLS = {
    "flushall": ("FLUSHALL",),
    "flushdb": ("FLUSHDB",),
    "config": ("CONFIG", "GET", "maxmemory"),
    "debug": ("DEBUG", "SLEEP", "0"),
    "keys": ("KEYS", "*"),
    "shutdown": ("SHUTDOWN",),
}


@pytest.fixture(scope="module")
def seeded(admin):
    """Write one key of each type the reader's commands read, plus keys outside cache:*."""
    admin.set("cache:string", "cached")
    admin.hset("cache:hash", mapping={"field": "value"})
    admin.rpush("cache:list", "first", "second")
    admin.sadd("cache:set", "member")
    admin.set("other:secret", "hidden")
    admin.set("app:owned", "by the app")
    return admin


@pytest.fixture(scope="module")
def reader(server, seeded):
    return server.client("cache_reader")


@pytest.fixture(scope="module")
def app(server, seeded):
    return server.client("app_service")


def renamed_call(server, command: str) -> tuple[str, ...]:
    """Return ``CHECKLIST_CALLS[command]`` under the command's new name."""
    _original, *arguments = CHECKLIST_CALLS[command]
    return (server.renamed(command), *arguments)


def test_cache_reader_reads_cache(reader):
    assert reader.get("cache:string") == "cached"
    assert reader.mget("cache:string", "cache:absent") == ["cached", None]
    assert reader.hget("cache:hash", "field") == "value"
    assert reader.hgetall("cache:hash") == {"field": "value"}
    assert reader.lrange("cache:list", 0, -1) == ["first", "second"]
    assert reader.smembers("cache:set") == {"member"}


@pytest.mark.parametrize("call", [
    ("SET", "cache:string", "overwritten"),
    ("HSET", "cache:hash", "field", "overwritten"),
    ("RPUSH", "cache:list", "third"),
    ("SADD", "cache:set", "intruder"),
    ("DEL", "cache:string"),
    ("EXPIRE", "cache:string", "1"),
], ids=lambda call: call[0].lower())
def test_cache_reader_cannot_write_cache(reader, seeded, call):
    with pytest.raises(redis.exceptions.NoPermissionError) as failure:
        reader.execute_command(*call)
    assert f"no permissions to run the '{call[0].lower()}' command" in str(failure.value)
    assert seeded.get("cache:string") == "cached"
    assert seeded.ttl("cache:string") == -1


@pytest.mark.parametrize("call", [
    ("GET", "other:secret"),
    ("GET", "app:owned"),
    ("MGET", "cache:string", "other:secret"),
], ids=["get-other", "get-app", "mget-mixed"])
def test_cache_reader_cannot_read_other_keys(reader, call):
    with pytest.raises(redis.exceptions.NoPermissionError) as failure:
        reader.execute_command(*call)
    assert "no permissions to access one of the keys" in str(failure.value)


def test_cache_reader_cannot_run_other_reads(reader):
    with pytest.raises(redis.exceptions.NoPermissionError):
        reader.execute_command("SCAN", "0")


def test_app_service_uses_app_keys(app):
    assert app.set("app:counter", "1") is True
    assert app.incr("app:counter") == 2
    assert app.get("app:owned") == "by the app"


def test_app_service_cannot_read_other_keys(app):
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.get("other:secret")


def test_app_service_rules_end_with_dangerous_removed(admin):
    user = admin.acl_getuser("app_service")
    assert user["categories"] == ["+@all", "-@dangerous"]
    assert user["keys"] == ["~app:*"]


@pytest.mark.parametrize("command", ["flushall", "flushdb", "debug", "keys", "shutdown"])
def test_checklist_commands_are_dangerous(admin, command):
    # CONFIG itself is a container: only its subcommands carry @dangerous,
    # which test_app_service_renamed_commands_denied covers for CONFIG GET.
    assert command in admin.acl_cat("dangerous")


@pytest.mark.parametrize("command", list(CHECKLIST_CALLS))
def test_app_service_original_names_unknown(app, command):
    with pytest.raises(redis.ResponseError) as failure:
        app.execute_command(*CHECKLIST_CALLS[command])
    assert str(failure.value).startswith(f"unknown command '{command.upper()}'")


@pytest.mark.parametrize("command, denied_as", [("config", "config|get"), ("keys", "keys")])
def test_app_service_renamed_commands_denied(server, app, command, denied_as):
    with pytest.raises(redis.exceptions.NoPermissionError) as failure:
        app.execute_command(*renamed_call(server, command))
    assert f"no permissions to run the '{denied_as}' command" in str(failure.value)


def test_app_service_renamed_debug_blocked(server, app):
    # enable-debug-command no is checked before authentication and ACLs, for
    # every client, so the renamed DEBUG fails the same way for an admin
    # and never reaches the ACL check that would deny it.
    with pytest.raises(redis.ResponseError) as failure:
        app.execute_command(*renamed_call(server, "debug"))
    assert str(failure.value).startswith("DEBUG command not allowed.")


@pytest.mark.parametrize("command, denied_as", [
    ("config", "config|get"), ("keys", "keys"), ("debug", "debug"),
])
def test_app_service_acl_denies_renamed(server, admin, command, denied_as):
    # ACL DRYRUN runs only the ACL check, so it shows that the ACL alone
    # would stop app_service even if a rename were lost.
    verdict = admin.execute_command("ACL", "DRYRUN", "app_service",
                                    *renamed_call(server, command))
    assert verdict == f"This user has no permissions to run the '{denied_as}' command"
