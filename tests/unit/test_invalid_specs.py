"""SecureRedis specs that spec.load must reject, each naming the bad field."""

from __future__ import annotations

import pytest

from secureredis import spec
from spec_inputs import secure_redis, user


def rules(*tokens: str, admin: bool = False, version: str | None = None) -> dict:
    fragment = {"acl": {"users": [user("app", *tokens, admin=admin)]}}
    if version:
        fragment["version"] = version
    return fragment


RULE = "spec.acl.users[0].rules[0]"
SECOND_RULE = "spec.acl.users[0].rules[1]"
NAME = "spec.acl.users[0].name"

# (id, spec fragment, field path in the error, word in that error's message)
INVALID = [
    # ACL key and channel patterns
    ("key-permission-bad-letter", rules("%X~app:*"), RULE, "permission"),
    ("key-pattern-empty", rules("~"), RULE, "empty"),
    ("read-pattern-empty", rules("%R~"), RULE, "empty"),
    ("channel-pattern-empty", rules("&"), RULE, "empty"),
    ("key-pattern-with-quote", rules('~app"x'), RULE, "ASCII"),
    # selectors
    ("selector-unclosed", rules("(~app:* +get"), RULE, "closed"),
    ("selector-unopened", rules("~app:* +get)"), RULE, "matching"),
    ("selector-nested", rules("(~a (~b +get))"), RULE, "nested"),
    ("selector-empty", rules("~app:*", "()"), SECOND_RULE, "empty"),
    ("selector-glued-to-token", rules("~app:*(+get)"), RULE, "start"),
    ("clearselectors-in-selector", rules("(~a clearselectors)"), RULE, "selector"),
    # password and state rules
    ("password-add", rules(">secretvalue"), RULE, "password"),
    ("password-remove", rules("<secretvalue"), RULE, "password"),
    ("password-hash-add", rules("#" + "a" * 64), RULE, "password"),
    ("password-hash-remove", rules("!" + "b" * 64), RULE, "password"),
    ("password-in-selector", rules("(~a >secretvalue)"), RULE, "password"),
    ("nopass", rules("nopass"), RULE, "password"),
    ("resetpass", rules("resetpass"), RULE, "password"),
    ("state-on", rules("on"), RULE, "enabled"),
    ("state-off", rules("off"), RULE, "enabled"),
    ("state-reset", rules("reset"), RULE, "resets"),
    ("state-on-uppercase", rules("ON"), RULE, "enabled"),
    ("unknown-token", rules("everything"), RULE, "rule"),
    ("rule-empty-string", rules("   "), RULE, "non-empty"),
    ("rules-missing", {"acl": {"users": [{"name": "app"}]}}, "spec.acl.users[0].rules", "rule"),
    # commands, subcommands and categories
    ("command-unknown", rules("+nosuchcommand"), RULE, "spelling"),
    ("command-unknown-in-selector", rules("(~a +nosuchcommand)"), RULE, "spelling"),
    ("command-name-missing", rules("+"), RULE, "command"),
    ("subcommand-unknown", rules("+client|nosuchsub"), RULE, "subcommand"),
    ("category-unknown", rules("+@nosuchcategory"), RULE, "category"),
    ("first-arg-removal", rules("-get|x"), RULE, "subcommands"),
    ("dangerous-keys", rules("+keys"), RULE, "admin"),
    ("dangerous-flushall", rules("+flushall"), RULE, "admin"),
    ("dangerous-config-set", rules("+config|set"), RULE, "admin"),
    ("dangerous-category", rules("+@dangerous"), RULE, "admin"),
    ("dangerous-in-selector", rules("(~a +flushdb)"), RULE, "admin"),
    ("redis-8-command-on-7", rules("+hgetex", version="redis-7.0"), RULE, "7.0"),
    ("vector-command-on-7", rules("+vadd", version="redis-7.0"), RULE, "7.0"),
    # user names
    ("user-default", {"acl": {"users": [user("default", "+get")]}}, NAME, "built-in"),
    ("user-system-prefix", {"acl": {"users": [user("secureredis-x", "+get")]}}, NAME,
     "reserved"),
    ("user-uppercase", {"acl": {"users": [user("Alice", "+get")]}}, NAME, "lowercase"),
    ("user-too-long", {"acl": {"users": [user("a" * 33, "+get")]}}, NAME, "32"),
    ("user-trailing-dash", {"acl": {"users": [user("app-", "+get")]}}, NAME, "ending"),
    ("user-name-missing", {"acl": {"users": [{"rules": ["+get"]}]}}, NAME, "valid"),
    ("user-secret-collision",
     {"acl": {"users": [user("a_b", "+get"), user("a-b", "+get")]}},
     "spec.acl.users[1].name", "collides"),
    ("users-not-list", {"acl": {"users": {"name": "app"}}}, "spec.acl.users", "list"),
    ("password-ref-bad-name",
     {"acl": {"users": [{**user("app", "+get"), "passwordSecretRef": {"name": "Bad_Name"}}]}},
     "spec.acl.users[0].passwordSecretRef.name", "Secret"),
    # rotation
    ("rotation-too-often", {"acl": {"rotation": {"interval": "30m"}}},
     "spec.acl.rotation.interval", "1h"),
    ("rotation-grace-too-short", {"acl": {"rotation": {"gracePeriod": "30s"}}},
     "spec.acl.rotation.gracePeriod", "at least 2m"),
    ("rotation-grace-too-long",
     {"acl": {"rotation": {"interval": "24h", "gracePeriod": "24h"}}},
     "spec.acl.rotation.gracePeriod", "shorter"),
    # renamed commands
    ("rename-unknown-command", {"commands": {"rename": {"nosuchcommand": ""}}},
     "spec.commands.rename[nosuchcommand]", "command"),
    ("rename-config-disabled", {"commands": {"rename": {"config": ""}}},
     "spec.commands.rename[config]", "CONFIG"),
    ("rename-target-too-short", {"commands": {"rename": {"keys": "k"}}},
     "spec.commands.rename[keys]", "valid"),
    ("rename-target-has-space", {"commands": {"rename": {"keys": "my keys cmd"}}},
     "spec.commands.rename[keys]", "valid"),
    ("rename-target-existing", {"commands": {"rename": {"keys": "getrange"}}},
     "spec.commands.rename[keys]", "existing"),
    ("rename-target-not-string", {"commands": {"rename": {"keys": 12345678}}},
     "spec.commands.rename[keys]", "string"),
    ("rename-targets-duplicate",
     {"commands": {"rename": {"debug": "Hidden_Cmd_1", "keys": "hidden_cmd_1"}}},
     "spec.commands.rename[keys]", "unique"),
    # topology
    ("mode-unknown", {"mode": "sentinel"}, "spec.mode", "supported"),
    ("version-unknown", {"version": "redis-6.2"}, "spec.version", "supported"),
    ("standalone-two-replicas", {"mode": "standalone", "replicas": 2}, "spec.replicas",
     "standalone"),
    ("replication-one-replica", {"mode": "replication", "replicas": 1}, "spec.replicas",
     "least"),
    ("cluster-with-replicas", {"mode": "cluster", "replicas": 6}, "spec.replicas", "remove"),
    ("cluster-field-in-standalone", {"mode": "standalone", "cluster": {"shards": 3}},
     "spec.cluster", "cluster"),
    ("cluster-empty-in-replication", {"mode": "replication", "cluster": {}},
     "spec.cluster", "cluster"),
    ("cluster-two-shards", {"mode": "cluster", "cluster": {"shards": 2}},
     "spec.cluster.shards", "3"),
    ("cluster-six-replicas-per-shard",
     {"mode": "cluster", "cluster": {"replicasPerShard": 6}},
     "spec.cluster.replicasPerShard", "5"),
    # TLS
    ("tls-protocol-1-1", {"tls": {"protocols": ["TLSv1.1"]}}, "spec.tls.protocols[0]",
     "insecure"),
    ("tls-protocol-twice", {"tls": {"protocols": ["TLSv1.3", "TLSv1.3"]}},
     "spec.tls.protocols", "twice"),
    ("tls-renew-before-duration", {"tls": {"certificateDuration": "720h",
                                           "renewBefore": "720h"}},
     "spec.tls.renewBefore", "shorter"),
    ("tls-ca-shorter-than-leaf", {"tls": {"certificateDuration": "2160h",
                                          "caDuration": "720h"}},
     "spec.tls.caDuration", "outlive"),
    ("tls-duration-too-short", {"tls": {"certificateDuration": "30m", "renewBefore": "10m"}},
     "spec.tls.certificateDuration", "1h"),
    ("tls-cert-manager-no-issuer", {"tls": {"issuer": "certManager"}},
     "spec.tls.issuerRef.name", "cert-manager"),
    ("tls-secret-no-secret-name", {"tls": {"issuer": "secret"}}, "spec.tls.secretName",
     "required"),
    ("tls-duration-in-days", {"tls": {"certificateDuration": "90d"}},
     "spec.tls.certificateDuration", "duration"),
    ("tls-ciphers-with-space", {"tls": {"ciphers": "AES128 AES256"}}, "spec.tls.ciphers",
     "spaces"),
    ("tls-key-algorithm-unknown", {"tls": {"keyAlgorithm": "DSA-1024"}},
     "spec.tls.keyAlgorithm", "supported"),
    ("tls-client-auth-unknown", {"tls": {"clientAuth": "sometimes"}},
     "spec.tls.clientAuth", "supported"),
    # memory and storage
    ("memory-unbounded", {"resources": {"requests": {"cpu": "100m"}}},
     "spec.memory.maxmemory", "required"),
    ("maxmemory-above-limit", {"memory": {"maxmemory": "1Gi"}}, "spec.memory.maxmemory",
     "exceeds"),
    ("maxmemory-bad-quantity", {"memory": {"maxmemory": "lots"}}, "spec.memory.maxmemory",
     "quantity"),
    ("maxmemory-zero", {"memory": {"maxmemory": 0}}, "spec.memory.maxmemory", "greater"),
    ("memory-limit-bad-quantity", {"resources": {"limits": {"memory": "256MB"}}},
     "spec.resources.limits.memory", "quantity"),
    ("memory-policy-unknown", {"memory": {"policy": "lru"}}, "spec.memory.policy",
     "supported"),
    ("storage-size-bad-quantity", {"storage": {"size": "big"}}, "spec.storage.size",
     "quantity"),
    ("persistence-unknown", {"storage": {"persistence": "snapshots"}},
     "spec.storage.persistence", "supported"),
    # logs, disruption budget and metrics
    ("slowlog-negative-threshold", {"slowlog": {"slowerThanMicroseconds": -1}},
     "spec.slowlog.slowerThanMicroseconds", ">= 0"),
    ("slowlog-zero-length", {"slowlog": {"maxLen": 0}}, "spec.slowlog.maxLen", ">= 1"),
    ("acl-log-zero-length", {"aclLog": {"maxLen": 0}}, "spec.aclLog.maxLen", "ACL LOG"),
    ("pdb-zero-unavailable", {"podDisruptionBudget": {"maxUnavailable": 0}},
     "spec.podDisruptionBudget.maxUnavailable", ">= 1"),
    ("metrics-without-image", {"metrics": {"enabled": True}}, "spec.metrics.image",
     "required"),
    ("metrics-port-6379", {"metrics": {"port": 6379}}, "spec.metrics.port", "6379"),
    ("metrics-scraper-empty", {"metrics": {"scrapers": [{}]}}, "spec.metrics.scrapers[0]",
     "every pod"),
    # naming, pod labels and network
    ("cluster-domain-underscore", {"clusterDomain": "my_cluster.local"}, "spec.clusterDomain",
     "domain"),
    ("cluster-domain-uppercase", {"clusterDomain": "Cluster.Local"}, "spec.clusterDomain",
     "domain"),
    ("pod-label-reserved-k8s", {"podLabels": {"app.kubernetes.io/name": "x"}},
     "spec.podLabels[app.kubernetes.io/name]", "operator"),
    ("pod-label-reserved-own", {"podLabels": {"secureredis.io/role": "primary"}},
     "spec.podLabels[secureredis.io/role]", "operator"),
    ("network-client-empty", {"networkPolicy": {"clients": [{}]}},
     "spec.networkPolicy.clients[0]", "every pod"),
    ("pull-policy-unknown", {"imagePullPolicy": "Sometimes"}, "spec.imagePullPolicy",
     "supported"),
    ("pull-secret-bad-name", {"imagePullSecrets": [{"name": "Not A Name"}]},
     "spec.imagePullSecrets[0].name", "Secret"),
    # wrongly typed values, which the API server rejects but a local file may hold
    ("resources-not-object", {"resources": "small"}, "spec.resources", "object"),
    ("version-not-string", {"version": ["redis-7.0"]}, "spec.version", "supported"),
    ("replicas-not-integer", {"mode": "replication", "replicas": "3"}, "spec.replicas",
     "least"),
    ("rule-not-string", rules(5), RULE, "string"),
    ("user-not-object", {"acl": {"users": ["app"]}}, "spec.acl.users[0].rules", "rule"),
    ("password-ref-not-object",
     {"acl": {"users": [{**user("app", "+get"), "passwordSecretRef": "app-pw"}]}},
     "spec.acl.users[0].passwordSecretRef.name", "Secret"),
]

# Passwords a user might paste into rules; none may come back in an error.
PASSWORD_RULES = [
    ">secretvalue",
    "<secretvalue",
    "(~a >secretvalue)",
    ">secretvalue(~a)",
    "~a >secretvalue)",
    "(~a >secretvalue",
    "#" + "secretvalue" * 6,
]


def errors_of(fragment: dict, **metadata) -> list[spec.FieldError]:
    with pytest.raises(spec.SpecError) as raised:
        spec.load(secure_redis(fragment, **metadata))
    return raised.value.errors


@pytest.mark.parametrize(("fragment", "path", "word"),
                         [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_invalid_spec_names_field(fragment, path, word):
    errors = errors_of(fragment)
    messages = [error.message for error in errors if error.path == path]

    assert messages, f"no error at {path}; errors were at {[e.path for e in errors]}"
    assert any(word.lower() in message.lower() for message in messages), messages


def test_invalid_table_is_large():
    assert len(INVALID) >= 40


def test_invalid_ids_unique():
    ids = [case[0] for case in INVALID]

    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", ["Cache", "-cache", "cache.db", "a" * 41])
def test_invalid_metadata_name(name):
    errors = errors_of({}, name=name)

    assert [error.path for error in errors] == ["metadata.name"]


@pytest.mark.parametrize("rule", PASSWORD_RULES)
def test_password_not_echoed(rule):
    errors = errors_of(rules("~a", rule))
    text = "; ".join(str(error) for error in errors)

    leaked = "secretvalue" in text

    assert errors
    assert not leaked, "an error message repeats the password"


def test_every_error_reported():
    fragment = {
        "mode": "cluster",
        "cluster": {"shards": 1},
        "slowlog": {"maxLen": 0},
        "acl": {"users": [user("default", ">secretvalue")]},
    }

    paths = {error.path for error in errors_of(fragment)}

    assert "spec.cluster.shards" in paths
    assert "spec.slowlog.maxLen" in paths
    assert NAME in paths
    assert RULE in paths


def test_error_string_has_path():
    with pytest.raises(spec.SpecError) as raised:
        spec.load(secure_redis({"mode": "sentinel"}))

    assert str(raised.value).startswith("spec.mode: ")


def test_hgetex_only_in_redis_8():
    fragment = rules("~h:*", "+hgetex", version="redis-8.0")

    sr = spec.load(secure_redis(fragment))

    assert sr.users[0].rules == ("~h:*", "+hgetex")
