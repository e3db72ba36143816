"""Specs that spec.load accepts, and the defaults it fills in."""

from __future__ import annotations

from datetime import timedelta

import pytest

from secureredis import engines, spec
from spec_inputs import EXAMPLES, load_example, secure_redis, user

MIB = 2**20


def test_minimal_spec_defaults():
    sr = spec.load(secure_redis())

    assert sr.mode == "standalone"
    assert sr.version == engines.DEFAULT_ENGINE
    assert sr.pod.image == engines.ENGINES[engines.DEFAULT_ENGINE].image
    assert sr.tls.issuer == "operator"
    assert sr.tls.client_auth == "required"
    assert sr.tls.protocols == ("TLSv1.2", "TLSv1.3")
    assert sr.tls.certificate_duration == timedelta(days=90)
    assert sr.tls.renew_before == timedelta(days=30)
    assert sr.storage.persistence == "none"
    assert sr.network_policy.enabled
    assert sr.pdb_enabled
    assert not sr.metrics.enabled
    assert sr.cluster_domain == "cluster.local"
    assert sr.users == ()


def test_standalone_runs_one_pod():
    sr = spec.load(secure_redis({"mode": "standalone"}))

    assert sr.pod_count == 1


def test_standalone_accepts_replicas_one():
    sr = spec.load(secure_redis({"mode": "standalone", "replicas": 1}))

    assert sr.pod_count == 1


def test_replication_defaults_three_pods():
    sr = spec.load(secure_redis({"mode": "replication"}))

    assert sr.replicas == 3
    assert sr.pod_count == 3


def test_replication_keeps_replicas():
    sr = spec.load(secure_redis({"mode": "replication", "replicas": 5}))

    assert sr.pod_count == 5


def test_cluster_defaults_six_pods():
    sr = spec.load(secure_redis({"mode": "cluster"}))

    assert sr.cluster.shards == 3
    assert sr.cluster.replicas_per_shard == 1
    assert sr.pod_count == 6


def test_cluster_pod_count_formula():
    sr = spec.load(secure_redis({"mode": "cluster",
                                 "cluster": {"shards": 4, "replicasPerShard": 2}}))

    assert sr.pod_count == 12


def test_maxmemory_defaults_to_share():
    sr = spec.load(secure_redis({"resources": {"limits": {"memory": "1Gi"}}}))

    assert sr.memory.maxmemory_bytes == int(2**30 * 0.8)


def test_maxmemory_default_resources():
    sr = spec.load(secure_redis())

    assert sr.memory.maxmemory_bytes == int(256 * MIB * 0.8)


def test_maxmemory_explicit_quantity():
    sr = spec.load(secure_redis({"memory": {"maxmemory": "200Mi"}}))

    assert sr.memory.maxmemory_bytes == 200 * MIB


def test_maxmemory_without_limit():
    fragment = {"resources": {"requests": {"cpu": "1"}}, "memory": {"maxmemory": "1G"}}

    sr = spec.load(secure_redis(fragment))

    assert sr.memory.maxmemory_bytes == 10**9


@pytest.mark.parametrize(("persistence", "policy"), [
    ("none", "allkeys-lru"),
    ("rdb", "noeviction"),
    ("aof", "noeviction"),
])
def test_policy_follows_persistence(persistence, policy):
    sr = spec.load(secure_redis({"storage": {"persistence": persistence}}))

    assert sr.memory.policy == policy


def test_explicit_policy_wins():
    fragment = {"storage": {"persistence": "rdb"}, "memory": {"policy": "volatile-ttl"}}

    sr = spec.load(secure_redis(fragment))

    assert sr.memory.policy == "volatile-ttl"


def test_default_renames():
    sr = spec.load(secure_redis())

    assert sr.renames["flushall"] == ""
    assert sr.renames["flushdb"] == ""
    assert sr.renames["shutdown"] == ""
    assert sr.renames["config"] == "random"
    assert sr.renames["keys"] == "random"
    assert sr.renames["debug"] == "random"


def test_renames_merge_with_defaults():
    fragment = {"commands": {"rename": {"keys": "", "flushdb": "Wipe_Database_1"}}}

    sr = spec.load(secure_redis(fragment))

    assert sr.renames["keys"] == ""
    assert sr.renames["flushdb"] == "Wipe_Database_1"
    assert sr.renames["flushall"] == ""
    assert sr.renames["config"] == "random"


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_loads(path):
    obj = load_example(path)

    sr = spec.load(obj)

    assert sr.name == obj["metadata"]["name"]
    assert sr.mode == obj["spec"]["mode"]
    assert len(sr.users) == len(obj["spec"]["acl"]["users"])


def test_examples_cover_every_mode():
    modes = {load_example(path)["spec"]["mode"] for path in EXAMPLES}

    assert modes == set(spec.MODES)


@pytest.mark.parametrize("rule", [
    "%RW~x",
    "%R~cache:*",
    "%W~out:*",
    "&chan:*",
    "allkeys",
    "allchannels",
    "nocommands",
    "+@read -@write",
    "+select|0",
    "-client|kill",
    "clearselectors",
    "resetkeys ~a:*",
])
def test_valid_rule_accepted(rule):
    sr = spec.load(secure_redis({"acl": {"users": [user("app", rule)]}}))

    assert sr.users[0].rules == (rule,)


def test_all_with_selector_accepted():
    rules = ("~app:*", "+@all", "(~x +get)")

    sr = spec.load(secure_redis({"acl": {"users": [user("app", *rules)]}}))

    assert sr.users[0].rules == rules
    assert not sr.users[0].admin


@pytest.mark.parametrize("rule", ["+client|list", "+keys", "+config|set", "+@dangerous",
                                  "+flushall"])
def test_admin_may_grant_dangerous(rule):
    sr = spec.load(secure_redis({"acl": {"users": [user("ops", "~*", rule, admin=True)]}}))

    assert sr.users[0].admin


@pytest.mark.parametrize("version", list(engines.ENGINES))
def test_every_version_loads(version):
    sr = spec.load(secure_redis({"version": version,
                                 "acl": {"users": [user("app", "~a:*", "+@read")]}}))

    assert sr.engine.key == version
    assert sr.pod.image == engines.ENGINES[version].image


def test_user_fields_loaded():
    raw = {**user("app", "+get"), "enabled": False,
           "passwordSecretRef": {"name": "app-password"}}

    sr = spec.load(secure_redis({"acl": {"users": [raw]}}))

    assert sr.users[0].enabled is False
    assert sr.users[0].password_secret_ref == spec.SecretKeyRef("app-password", "password")


@pytest.mark.parametrize(("text", "expected"), [
    ("2160h", timedelta(days=90)),
    ("1h30m", timedelta(minutes=90)),
    ("45s", timedelta(seconds=45)),
    ("1.5h", timedelta(minutes=90)),
    ("250ms", timedelta(milliseconds=250)),
])
def test_parse_duration(text, expected):
    assert spec.parse_duration(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("256Mi", 256 * MIB),
    ("1G", 10**9),
    ("1048576", 2**20),
    (4096, 4096),
    ("1.5Gi", int(1.5 * 2**30)),
])
def test_parse_quantity(text, expected):
    assert spec.parse_quantity(text) == expected
