"""Settings read back live, through the renamed CONFIG GET as the operator user."""

from __future__ import annotations

from pathlib import Path

import pytest

from redis_harness import secure_redis_object

pytestmark = pytest.mark.redis

# Redis 7's default RDB snapshot points, which redisconf writes for rdb.
RDB_SAVE_POINTS = "3600 1 300 100 60 10000"


def setting_reader(server):
    """Return a function that reads one setting as the operator user."""
    operator = server.client("operator")
    return lambda parameter: server.config_get(operator, parameter)


@pytest.fixture(scope="module")
def setting(server):
    return setting_reader(server)


@pytest.fixture(scope="module")
def rdb_setting(start_redis):
    # No memory section, so maxmemory and the policy take their defaults.
    obj = secure_redis_object("store", storage={"persistence": "rdb"}, memory={})
    return setting_reader(start_redis(obj))


@pytest.fixture(scope="module")
def aof_server(start_redis):
    return start_redis(secure_redis_object("journal", storage={"persistence": "aof"}, memory={}))


@pytest.fixture(scope="module")
def aof_setting(aof_server):
    return setting_reader(aof_server)


def test_maxmemory_as_specified(setting):
    assert setting("maxmemory") == str(48 * 1024 * 1024)


def test_maxmemory_policy_as_specified(setting):
    assert setting("maxmemory-policy") == "allkeys-lru"


def test_persistence_none_disables_snapshots(setting):
    assert setting("save") == ""


def test_persistence_none_disables_aof(setting):
    assert setting("appendonly") == "no"


def test_persistence_none_writes_nothing(server, admin):
    admin.set("cache:volatile", "x" * 1024)
    assert list(Path(server.paths.data_dir).iterdir()) == []


def test_slowlog_threshold_as_specified(setting):
    assert setting("slowlog-log-slower-than") == "2500"


def test_slowlog_length_as_specified(setting):
    assert setting("slowlog-max-len") == "32"


def test_acl_log_length_as_specified(setting):
    assert setting("acllog-max-len") == "64"


@pytest.mark.parametrize("parameter, expected", [
    ("port", "0"),
    ("protected-mode", "yes"),
    ("tls-auth-clients", "yes"),
    ("tls-protocols", "TLSv1.2 TLSv1.3"),
    ("tls-replication", "yes"),
    ("enable-debug-command", "no"),
    ("enable-protected-configs", "no"),
    ("enable-module-command", "no"),
    ("bind", "127.0.0.1 -::1"),
])
def test_security_setting_live(setting, parameter, expected):
    assert setting(parameter) == expected


def test_rdb_enables_snapshots(rdb_setting):
    assert rdb_setting("save") == RDB_SAVE_POINTS


def test_rdb_disables_aof(rdb_setting):
    assert rdb_setting("appendonly") == "no"


def test_rdb_refuses_eviction(rdb_setting):
    # A store with persistence fails writes when full instead of dropping data.
    assert rdb_setting("maxmemory-policy") == "noeviction"


def test_rdb_maxmemory_from_memory_limit(rdb_setting):
    # No maxmemory in the spec: 80% of the default 256Mi container limit.
    assert rdb_setting("maxmemory") == str(int(256 * 1024 * 1024 * 0.8))


def test_aof_enables_append_only(aof_setting):
    assert aof_setting("appendonly") == "yes"


def test_aof_fsyncs_every_second(aof_setting):
    assert aof_setting("appendfsync") == "everysec"


def test_aof_disables_snapshots(aof_setting):
    assert aof_setting("save") == ""


def test_aof_writes_append_only_dir(aof_server):
    aof_server.client("redis_admin").set("journal:entry", "1")
    assert (Path(aof_server.paths.data_dir) / "appendonlydir").is_dir()
