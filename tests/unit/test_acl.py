"""ACL tokens, users.acl lines and the operator's own users."""

from __future__ import annotations

import pytest

from secureredis import acl, credentials, engines

HASH = credentials.password_hash("unit-test-password-not-secret-0001")
OTHER_HASH = credentials.password_hash("unit-test-password-not-secret-0002")


@pytest.mark.parametrize(("rule", "tokens"), [
    ("+get", ["+get"]),
    ("~a:* +get  +set", ["~a:*", "+get", "+set"]),
    ("  ~a:*\t+get\n", ["~a:*", "+get"]),
    ("(~x +get)", ["(~x +get)"]),
    ("~a (~x +get) +set", ["~a", "(~x +get)", "+set"]),
    ("(~x +get)(~y +set)", ["(~x +get)", "(~y +set)"]),
    ("()", ["()"]),
    ("", []),
])
def test_split_tokens(rule, tokens):
    assert acl.split_tokens(rule) == tokens


@pytest.mark.parametrize(("rule", "word"), [
    ("(~x +get", "closed"),
    ("~x +get)", "matching"),
    ("(~x (~y))", "nested"),
    ("~x(+get)", "start"),
])
def test_split_tokens_rejects(rule, word):
    with pytest.raises(ValueError) as raised:
        acl.split_tokens(rule)

    assert word in str(raised.value)


def test_user_line_prefix():
    line = acl.user_line("app", [HASH], ("+get",), enabled=True, block_dangerous=False)
    parts = line.split()

    assert parts[:4] == ["user", "app", "on", "resetpass"]
    assert parts[4] == f"#{HASH}"
    assert parts[5:9] == ["resetkeys", "resetchannels", "nocommands", "clearselectors"]


def test_user_line_disabled_user():
    line = acl.user_line("app", [HASH], ("+get",), enabled=False, block_dangerous=True)

    assert line.split()[2] == "off"


def test_user_line_hashes_only():
    line = acl.user_line("app", [HASH, OTHER_HASH], ("+get",), enabled=True,
                         block_dangerous=True)
    password_tokens = [token for token in line.split() if token[0] in "><#!"]

    assert password_tokens == [f"#{HASH}", f"#{OTHER_HASH}"]
    assert "nopass" not in line.split()


def test_user_line_needs_password():
    with pytest.raises(ValueError):
        acl.user_line("app", [], ("+get",), enabled=True, block_dangerous=True)


def test_non_admin_blocks_dangerous():
    rules = ("~app:*", "+@all", "(~x +get)")

    line = acl.user_line("app", [HASH], rules, enabled=True, block_dangerous=True)

    assert line.endswith(" -@dangerous")
    assert "(~x +get -@dangerous)" in line
    assert line.index("+@all") < line.rindex("-@dangerous")


def test_every_selector_blocks_dangerous():
    rules = ("(~x +get)", "(~y +set )")

    line = acl.user_line("app", [HASH], rules, enabled=True, block_dangerous=True)

    assert "(~x +get -@dangerous)" in line
    assert "(~y +set -@dangerous)" in line


def test_admin_keeps_dangerous():
    rules = ("~*", "+@all", "(~x +get)")

    line = acl.user_line("ops", [HASH], rules, enabled=True, block_dangerous=False)

    assert "-@dangerous" not in line
    assert line.endswith("+@all (~x +get)")


def test_default_user_line():
    tokens = acl.default_user_line().split()

    assert tokens[:2] == ["user", "default"]
    assert "off" in tokens
    assert "on" not in tokens
    assert "resetpass" in tokens
    assert "nopass" not in tokens
    assert "nocommands" in tokens
    assert "resetkeys" in tokens
    assert "resetchannels" in tokens


@pytest.mark.parametrize("name", ["app", "a", "cache_reader", "app-2", "a" * 32])
def test_user_name_accepted(name):
    assert acl.check_user_name(name) is None


@pytest.mark.parametrize("name", ["default", "secureredis-operator", "App", "a" * 33, "_a",
                                  "a b", "", None])
def test_user_name_rejected(name):
    assert acl.check_user_name(name)


def test_secret_suffix_maps_underscore():
    assert acl.secret_suffix("cache_reader") == "cache-reader"


@pytest.mark.parametrize("key", list(engines.ENGINES))
def test_system_users_valid_everywhere(key):
    engine = engines.ENGINES[key]
    table = engines.command_table(key)

    users = acl.system_users(engine.replication_commands, table)

    for system_user in users:
        for rule in system_user.rules:
            problems = acl.check_rule(rule, table, admin=True)
            assert problems == [], f"{system_user.name} on {key}: {rule}"


@pytest.mark.parametrize("key", list(engines.ENGINES))
def test_system_users_roles(key):
    engine = engines.ENGINES[key]
    users = acl.system_users(engine.replication_commands, engines.command_table(key))

    roles = [system_user.role for system_user in users]
    names = [system_user.name for system_user in users]

    assert roles == ["operator", "replication", "probe", "exporter"]
    assert all(name.startswith(acl.SYSTEM_USER_PREFIX) for name in names)
    assert all(acl.check_user_name(name) for name in names)


def test_probe_user_only_pings():
    engine = engines.ENGINES[engines.DEFAULT_ENGINE]
    users = acl.system_users(engine.replication_commands,
                             engines.command_table(engines.DEFAULT_ENGINE))

    probe = next(u for u in users if u.role == "probe")

    assert probe.rules == ("+ping",)


def test_replication_user_per_engine():
    valkey = engines.ENGINES["valkey-8.1"]
    redis = engines.ENGINES["redis-7.0"]

    assert "sync" in valkey.replication_commands
    assert "sync" not in redis.replication_commands
    assert "psync" in redis.replication_commands


def test_setinfo_only_where_supported():
    def operator_rules(key):
        engine = engines.ENGINES[key]
        users = acl.system_users(engine.replication_commands, engines.command_table(key))
        return next(u for u in users if u.role == "operator").rules

    assert "+client|setinfo" not in operator_rules("redis-7.0")
    assert "+client|setinfo" in operator_rules("redis-8.0")


@pytest.mark.parametrize("key", list(engines.ENGINES))
def test_command_table_loads(key):
    table = engines.command_table(key)

    assert table.has_command("get")
    assert table.has_subcommand("client", "list")
    assert "dangerous" in table.categories
    assert table.is_dangerous("flushall")
    assert not table.is_dangerous("get")


def test_check_rule_collects_problems():
    table = engines.command_table("redis-7.0")

    problems = acl.check_rule("+nosuch1 +nosuch2 ~", table, admin=False)

    assert len(problems) == 3
