"""Every renderer: redis.conf, users.acl, private.conf and each child object."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
from dataclasses import replace

import pytest

from secureredis import acl, credentials, names, redisconf, spec
from secureredis.render import RenderContext, render_all
from secureredis.render.network import network_policy
from secureredis.render.pdb import pod_disruption_budget
from secureredis.render.secrets import system_secret, tls_secret, user_secrets
from secureredis.render.services import client_service, headless_service, replicas_service
from secureredis.render.statefulset import probe_command, statefulset
from spec_inputs import Quiet, build, user

UID = "6f1c1c7e-0000-4000-8000-000000000001"
USERS = [
    user("cache_reader", "~cache:*", "+get", "+mget"),
    user("app_service", "~app:*", "+@all", "(~app:tmp:* +get)"),
    user("redis_admin", "~*", "&*", "+@all", admin=True),
]
MODES = {
    "standalone": {"mode": "standalone"},
    "replication": {"mode": "replication", "storage": {"persistence": "rdb"}},
    "cluster": {"mode": "cluster", "storage": {"persistence": "aof"}},
}


@pytest.fixture(scope="module", params=list(MODES))
def rendered(request):
    """Return (sr, material, children) for one mode, with three users and a uid."""
    sr, generated = build({**MODES[request.param], "acl": {"users": USERS}}, uid=UID)
    return Quiet((sr, generated, render_all(sr, generated)))


@pytest.fixture(scope="module")
def standalone():
    return build({"acl": {"users": USERS}}, uid=UID)


def secret_values(generated) -> list[str]:
    """List every password, private key and random command name of the material."""
    found = [generated.ca.key_pem, generated.server.key_pem]
    for credential in [*generated.users.values(), *generated.system.values()]:
        found += list(credential.passwords)
        if credential.client_cert:
            found.append(credential.client_cert.key_pem)
    found += [name for name in generated.renames.values() if name]
    return found


def leaked_in(text: str, generated) -> list[int]:
    """Return the positions in secret_values of each secret found in ``text``."""
    return [index for index, value in enumerate(secret_values(generated)) if value in text]


def directives(conf: str) -> dict[str, list[list[str]]]:
    """Parse redis.conf into directive name -> argument lists, one per occurrence."""
    parsed: dict[str, list[list[str]]] = {}
    for line in conf.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, *arguments = shlex.split(line)
        parsed.setdefault(name, []).append(arguments)
    return parsed


def by_kind(children: list[dict], kind: str) -> list[dict]:
    return [child for child in children if child["kind"] == kind]


def named(children: list[dict], name: str) -> dict:
    return next(child for child in children if child["metadata"]["name"] == name)


def decoded(secret: dict) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def all_keys(value) -> set[str]:
    """Collect every mapping key at any depth of a child object."""
    if isinstance(value, dict):
        return set(value) | set().union(*(all_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(all_keys(v) for v in value)) if value else set()
    return set()


# redis.conf

def test_conf_tls_only(standalone):
    conf = directives(redisconf.redis_conf(standalone[0]))

    assert conf["port"] == [["0"]]
    assert conf["tls-port"] == [["6379"]]
    assert conf["tls-auth-clients"] == [["yes"]]
    assert conf["tls-replication"] == [["yes"]]
    assert conf["protected-mode"] == [["yes"]]
    assert conf["bind"] == [["127.0.0.1", "-::1"]]


def test_conf_quotes_protocols(standalone):
    lines = redisconf.redis_conf(standalone[0]).splitlines()

    assert 'tls-protocols "TLSv1.2 TLSv1.3"' in lines


def test_conf_single_protocol():
    sr, _ = build({"tls": {"protocols": ["TLSv1.3"]}})

    lines = redisconf.redis_conf(sr).splitlines()

    assert "tls-protocols TLSv1.3" in lines


def test_conf_certificate_paths(standalone):
    conf = directives(redisconf.redis_conf(standalone[0]))

    assert conf["tls-cert-file"] == [["/etc/redis/tls/tls.crt"]]
    assert conf["tls-key-file"] == [["/etc/redis/tls/tls.key"]]
    assert conf["tls-ca-cert-file"] == [["/etc/redis/tls/ca.crt"]]


def test_conf_custom_paths(standalone):
    paths = redisconf.Paths(tls_dir="/tmp/t", acl_file="/tmp/a/users.acl",
                            private_conf="/tmp/p.conf", data_dir="/tmp/d")

    conf = directives(redisconf.redis_conf(standalone[0], paths, tls_port=16000))

    assert conf["tls-port"] == [["16000"]]
    assert conf["aclfile"] == [["/tmp/a/users.acl"]]
    assert conf["include"] == [["/tmp/p.conf"]]
    assert conf["dir"] == [["/tmp/d"]]


def test_conf_access_control(standalone):
    conf = directives(redisconf.redis_conf(standalone[0]))

    assert conf["aclfile"] == [["/etc/redis/acl/users.acl"]]
    assert conf["acllog-max-len"] == [["128"]]
    assert conf["include"] == [["/etc/redis/private/private.conf"]]
    assert conf["enable-debug-command"] == [["no"]]
    assert conf["enable-module-command"] == [["no"]]
    assert conf["enable-protected-configs"] == [["no"]]
    assert "requirepass" not in conf
    assert "user" not in conf
    assert "rename-command" not in conf


@pytest.mark.parametrize(("client_auth", "value"), [
    ("required", "yes"), ("optional", "optional"), ("none", "no")])
def test_conf_client_auth(client_auth, value):
    sr, _ = build({"tls": {"clientAuth": client_auth}})

    conf = directives(redisconf.redis_conf(sr))

    assert conf["tls-auth-clients"] == [[value]]


def test_conf_memory_and_logs():
    sr, _ = build({"memory": {"maxmemory": "100Mi", "policy": "allkeys-lfu"},
                   "slowlog": {"slowerThanMicroseconds": 500, "maxLen": 64},
                   "aclLog": {"maxLen": 32}})

    conf = directives(redisconf.redis_conf(sr))

    assert conf["maxmemory"] == [[str(100 * 2**20)]]
    assert conf["maxmemory-policy"] == [["allkeys-lfu"]]
    assert conf["slowlog-log-slower-than"] == [["500"]]
    assert conf["slowlog-max-len"] == [["64"]]
    assert conf["acllog-max-len"] == [["32"]]


@pytest.mark.parametrize(("persistence", "save_points", "appendonly"), [
    ("none", [], "no"),
    ("rdb", ["3600", "1", "300", "100", "60", "10000"], "no"),
    ("aof", [], "yes"),
])
def test_conf_persistence(persistence, save_points, appendonly):
    sr, _ = build({"storage": {"persistence": persistence}})

    conf = directives(redisconf.redis_conf(sr))

    # redis-server 7.0.15 splits a single quoted save argument at spaces, so
    # compare words.
    assert len(conf["save"]) == 1
    assert " ".join(conf["save"][0]).split() == save_points
    assert conf["appendonly"] == [[appendonly]]


def test_conf_cluster_options():
    sr, _ = build({"mode": "cluster"})

    conf = directives(redisconf.redis_conf(sr))

    assert conf["cluster-enabled"] == [["yes"]]
    assert conf["tls-cluster"] == [["yes"]]
    assert conf["cluster-port"] == [["16379"]]
    assert conf["cluster-preferred-endpoint-type"] == [["hostname"]]
    assert conf["cluster-config-file"] == [["/data/nodes.conf"]]


@pytest.mark.parametrize("mode", ["standalone", "replication"])
def test_conf_no_cluster_outside_cluster(mode):
    sr, _ = build({"mode": mode})

    conf = redisconf.redis_conf(sr)

    assert not re.search(r"^(cluster-|tls-cluster)", conf, re.MULTILINE)


def test_conf_replication_user(standalone):
    conf = directives(redisconf.redis_conf(standalone[0]))

    assert conf["masteruser"] == [["secureredis-replication"]]
    assert "masterauth" not in conf


@pytest.mark.parametrize(("value", "expected"), [
    ("yes", "yes"),
    ("", '""'),
    ("TLSv1.2 TLSv1.3", '"TLSv1.2 TLSv1.3"'),
    ('a"b', '"a\\"b"'),
    ("a\\b", '"a\\\\b"'),
])
def test_quote(value, expected):
    assert redisconf.quote(value) == expected


def test_conf_has_no_secrets(rendered):
    sr, generated, _ = rendered

    assert leaked_in(redisconf.redis_conf(sr), generated) == []


# users.acl and private.conf

def test_acl_default_first(rendered):
    sr, generated, _ = rendered

    first = redisconf.users_acl(sr, generated).splitlines()[0].split()

    assert first[:3] == ["user", "default", "off"]
    assert "nopass" not in first


def test_acl_line_per_user(rendered):
    sr, generated, _ = rendered

    lines = redisconf.users_acl(sr, generated).splitlines()
    users = [line.split()[1] for line in lines]

    assert users == ["default", "secureredis-operator", "secureredis-replication",
                     "secureredis-probe", "secureredis-exporter", "cache_reader",
                     "app_service", "redis_admin"]


def test_acl_hashes_not_passwords(rendered):
    sr, generated, _ = rendered

    text = redisconf.users_acl(sr, generated)
    password_token_count = sum(1 for t in text.split() if t[0] in "<>!")
    hash_tokens = {t[1:] for t in text.split() if t.startswith("#")}

    assert leaked_in(text, generated) == []
    assert password_token_count == 0
    assert "nopass" not in text.split()
    assert set(generated.users["cache_reader"].hashes) <= hash_tokens
    assert set(generated.system["probe"].hashes) <= hash_tokens


def test_acl_dangerous_only_for_admin(rendered):
    sr, generated, _ = rendered

    lines = {line.split()[1]: line for line in redisconf.users_acl(sr, generated).splitlines()}

    assert lines["cache_reader"].endswith(" -@dangerous")
    assert lines["app_service"].endswith(" -@dangerous")
    assert "(~app:tmp:* +get -@dangerous)" in lines["app_service"]
    assert "-@dangerous" not in lines["redis_admin"]
    assert "-@dangerous" not in lines["secureredis-operator"]


def test_acl_disabled_user_off():
    sr, generated = build({"acl": {"users": [{**user("app", "+get"), "enabled": False}]}})

    line = redisconf.users_acl(sr, generated).splitlines()[-1].split()

    assert line[:3] == ["user", "app", "off"]


def test_private_conf_renames(standalone):
    _, generated = standalone

    conf = directives(redisconf.private_conf(generated))
    renamed = {arguments[0]: arguments[1] for arguments in conf["rename-command"]}

    assert renamed["FLUSHALL"] == ""
    assert renamed["FLUSHDB"] == ""
    assert renamed["SHUTDOWN"] == ""
    assert credentials.is_random_command_name("config", renamed["CONFIG"])
    assert credentials.is_random_command_name("keys", renamed["KEYS"])
    assert credentials.is_random_command_name("debug", renamed["DEBUG"])


def test_private_conf_masterauth(standalone):
    _, generated = standalone

    conf = directives(redisconf.private_conf(generated))
    matches = conf["masterauth"] == [[generated.system["replication"].password]]

    assert matches


# Secrets

def test_secret_data_base64(rendered):
    _, _, children = rendered

    for secret in by_kind(children, "Secret"):
        assert "stringData" not in secret
        for key, value in secret["data"].items():
            round_trips = base64.b64encode(base64.b64decode(value)).decode() == value
            assert round_trips, f"{secret['metadata']['name']} {key}"


def test_secret_names(rendered):
    sr, _, children = rendered

    secret_names = {secret["metadata"]["name"] for secret in by_kind(children, "Secret")}

    assert names.ca_secret(sr.name) in secret_names
    assert names.tls_secret(sr.name) in secret_names
    assert names.system_secret(sr.name) in secret_names
    assert names.user_secret(sr.name, "cache_reader") in secret_names
    assert "demo-user-cache-reader" in secret_names


def test_tls_secret_keys(standalone):
    sr, generated = standalone

    secret = tls_secret(sr, generated)
    data = decoded(secret)

    assert secret["type"] == "kubernetes.io/tls"
    assert data["tls.crt"] == generated.server.cert_pem
    assert data["ca.crt"] == generated.ca.cert_pem
    same_key = data["tls.key"] == generated.server.key_pem
    assert same_key


def test_system_secret_keys(standalone):
    sr, generated = standalone

    data = decoded(system_secret(sr, generated))

    for role in ("operator", "replication", "probe", "exporter"):
        assert data[f"{role}-username"] == acl.SYSTEM_USER_PREFIX + role
        assert f"{role}-password" in data
    assert "operator.crt" in data
    assert "operator.key" in data
    same_private_conf = data["private.conf"] == redisconf.private_conf(generated)
    assert same_private_conf
    assert json.loads(data["renamed-commands.json"]) == dict(generated.renames)


def test_user_secret_keys(standalone):
    sr, generated = standalone

    secret = named(user_secrets(sr, generated), "demo-user-cache-reader")
    data = decoded(secret)
    credential = generated.users["cache_reader"]

    assert data["username"] == "cache_reader"
    assert data["host"] == "demo.apps.svc.cluster.local"
    assert data["port"] == "6379"
    url = data["url"].replace(credential.password, "PASSWORD")
    assert url == "rediss://cache_reader:PASSWORD@demo.apps.svc.cluster.local:6379"
    assert credentials.password_hash(data["password"]) == credential.hashes[-1]
    assert data["tls.crt"] == credential.client_cert.cert_pem
    assert "ca.crt" in data


def test_one_secret_per_user(standalone):
    sr, generated = standalone

    assert len(user_secrets(sr, generated)) == len(USERS)


# ConfigMaps and secrets outside Secrets

def test_config_maps(rendered):
    sr, generated, children = rendered

    config = named(children, names.config_map(sr.name))
    acl_map = named(children, names.acl_config_map(sr.name))

    assert config["data"] == {"redis.conf": redisconf.redis_conf(sr)}
    assert acl_map["data"] == {"users.acl": redisconf.users_acl(sr, generated)}


def test_no_secret_outside_secrets(rendered):
    _, generated, children = rendered

    for child in children:
        if child["kind"] == "Secret":
            continue
        text = json.dumps(child)
        assert leaked_in(text, generated) == [], child["kind"]
        assert "PRIVATE KEY" not in text, child["kind"]


# Services

def test_headless_service(rendered):
    sr, _, children = rendered

    service = named(children, names.headless_service(sr.name))
    ports = {port["port"] for port in service["spec"]["ports"]}

    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == names.selector_labels(sr.name)
    assert ports == {6379, 16379}


def test_replication_client_selects_primary():
    sr, _ = build({"mode": "replication"})

    service = client_service(sr)

    assert service["spec"]["selector"]["secureredis.io/role"] == "primary"
    assert service["spec"]["ports"][0]["port"] == 6379


def test_replicas_service_selects_replicas():
    sr, _ = build({"mode": "replication"})

    service = replicas_service(sr)

    assert service["metadata"]["name"] == "demo-replicas"
    assert service["spec"]["selector"]["secureredis.io/role"] == "replica"


@pytest.mark.parametrize("mode", ["standalone", "cluster"])
def test_client_service_no_role(mode):
    sr, _ = build({"mode": mode})

    service = client_service(sr)

    assert "secureredis.io/role" not in service["spec"]["selector"]
    assert service["spec"]["type"] == "ClusterIP"


def test_headless_service_always_present(rendered):
    sr, _, children = rendered

    service_names = {s["metadata"]["name"] for s in by_kind(children, "Service")}

    assert names.headless_service(sr.name) in service_names
    assert names.client_service(sr.name) in service_names
    assert (names.replicas_service(sr.name) in service_names) == (sr.mode == "replication")


def test_headless_service_function(standalone):
    service = headless_service(standalone[0])

    assert service["metadata"]["name"] == "demo-headless"


# StatefulSet

def pod_spec(children: list[dict]) -> dict:
    return by_kind(children, "StatefulSet")[0]["spec"]["template"]["spec"]


def redis_container(children: list[dict]) -> dict:
    return next(c for c in pod_spec(children)["containers"] if c["name"] == "redis")


def test_statefulset_replicas(rendered):
    sr, _, children = rendered

    sts = by_kind(children, "StatefulSet")[0]

    assert sts["spec"]["replicas"] == sr.pod_count
    assert sts["spec"]["serviceName"] == names.headless_service(sr.name)
    assert sts["spec"]["selector"]["matchLabels"] == names.selector_labels(sr.name)


def test_pod_security_context(rendered):
    _, _, children = rendered

    pod = pod_spec(children)

    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 999
    assert pod["securityContext"]["runAsGroup"] == 999
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_container_security_context(rendered):
    _, _, children = rendered

    context = redis_container(children)["securityContext"]

    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 999
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["privileged"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_no_sub_path(rendered):
    _, _, children = rendered

    sts = by_kind(children, "StatefulSet")[0]

    assert "subPath" not in all_keys(sts)
    assert "subPathExpr" not in all_keys(sts)


def test_mounts_read_only(rendered):
    _, _, children = rendered

    mounts = {m["name"]: m for m in redis_container(children)["volumeMounts"]}

    assert mounts["config"]["readOnly"] is True
    assert mounts["acl"]["readOnly"] is True
    assert mounts["tls"]["readOnly"] is True
    assert mounts["private"]["readOnly"] is True
    assert "readOnly" not in mounts["data"]


def test_private_volume_mounts_two_keys(rendered):
    _, _, children = rendered

    volumes = {v["name"]: v for v in pod_spec(children)["volumes"]}

    # Only private.conf and the probe's own password, never the other
    # system users' passwords or the operator's client key.
    assert volumes["private"]["secret"]["items"] == [
        {"key": "private.conf", "path": "private.conf"},
        {"key": "probe-password", "path": "probe-password"}]
    assert volumes["tls"]["secret"]["defaultMode"] == 0o440


def test_server_args(rendered):
    sr, _, children = rendered

    container = redis_container(children)
    args = container["args"]

    assert container["command"] == ["redis-server"]
    assert args[0] == "/etc/redis/conf/redis.conf"
    assert "$(POD_IP)" in args
    assert ("--cluster-announce-hostname" in args) == (sr.mode == "cluster")
    # Replication pods start as replicas of the client Service, which selects
    # only the labelled primary.
    assert ("--replicaof" in args) == (sr.mode == "replication")


def test_probe_reads_mounted_password(rendered):
    sr, _, children = rendered

    volumes = {v["name"]: v for v in pod_spec(children)["volumes"]}
    private = volumes["private"]["secret"]
    command = redis_container(children)["readinessProbe"]["exec"]["command"][2]
    env = {e["name"] for e in redis_container(children)["env"]}

    assert private["secretName"] == names.system_secret(sr.name)
    assert {"key": "probe-password", "path": "probe-password"} in private["items"]
    assert command.startswith('REDISCLI_AUTH="$(cat /etc/redis/private/probe-password)"')
    assert "REDISCLI_AUTH" not in env


def probe_cli(command: list[str]) -> tuple[list[str], str]:
    """Split an exec probe into the redis-cli argv and the shell test that follows it."""
    assert command[:2] == ["sh", "-c"]
    match = re.fullmatch(r'(?:\w+="\$\(cat [^)]*\)" && export \w+ && )+'
                         r'reply="\$\((.*)\)" && (.*)', command[2])
    assert match
    return shlex.split(match.group(1)), match.group(2)


def test_probe_options_before_ping(rendered):
    _, _, children = rendered

    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        argv, check = probe_cli(redis_container(children)[probe]["exec"]["command"])
        options = [i for i, arg in enumerate(argv) if arg.startswith("-")]

        assert argv[0] == "redis-cli"
        assert argv[-1] == "PING"
        assert argv.count("PING") == 1
        assert max(options) < argv.index("PING")
        assert "--tls" in argv
        assert argv[argv.index("--user") + 1] == "secureredis-probe"
        assert "-a" not in argv
        assert "--pass" not in argv
        assert check == '[ "$reply" = PONG ]'


def test_valkey_probe_env():
    sr, generated = build({"version": "valkey-8.1"})

    children = render_all(sr, generated)
    container = redis_container(children)
    script = container["readinessProbe"]["exec"]["command"][2]
    argv, _ = probe_cli(container["readinessProbe"]["exec"]["command"])

    assert container["command"] == ["valkey-server"]
    assert argv[0] == "valkey-cli"
    assert "export VALKEYCLI_AUTH" in script
    assert "export REDISCLI_AUTH" in script


@pytest.mark.parametrize(("reply", "status", "passes"), [
    ("PONG", 0, True),
    ("PONG", 1, False),
    ("PONG ", 0, False),
    ("pong", 0, False),
    ("NOAUTH Authentication required.", 0, False),
    ("", 1, False),
])
def test_probe_requires_pong(tmp_path, standalone, reply, status, passes):
    # A stand-in redis-cli on PATH prints a fixed reply, so the probe's own
    # shell logic runs without any server.
    stub = tmp_path / "redis-cli"
    stub.write_text(f"#!/bin/sh\nprintf '%s\\n' {shlex.quote(reply)}\nexit {status}\n")
    stub.chmod(0o755)
    environment = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}

    result = subprocess.run(local_probe(tmp_path, standalone[0], "probe-test-password"),
                            env=environment, check=False, capture_output=True, timeout=30)

    assert (result.returncode == 0) == passes


def local_probe(directory, sr, password: str) -> list[str]:
    """Return the probe command with its password file placed in ``directory``."""
    paths = redisconf.Paths(private_conf=str(directory / "private.conf"))
    (directory / "probe-password").write_text(password)
    return probe_command(sr, paths)


def test_probe_passes_no_password(tmp_path, standalone):
    recorded = tmp_path / "argv"
    stub = tmp_path / "redis-cli"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {shlex.quote(str(recorded))}\n'
                    "echo PONG\n")
    stub.chmod(0o755)
    password = "probe-password-for-this-test-only-0123"
    environment = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}

    result = subprocess.run(local_probe(tmp_path, standalone[0], password), env=environment,
                            check=False, capture_output=True, timeout=30)
    argv = recorded.read_text()

    assert result.returncode == 0
    assert password not in argv
    assert argv.splitlines()[-1] == "PING"


def test_no_password_in_statefulset(rendered):
    _, generated, children = rendered

    text = json.dumps(by_kind(children, "StatefulSet")[0])

    assert leaked_in(text, generated) == []


def test_claims_only_with_persistence(rendered):
    sr, _, children = rendered

    sts = by_kind(children, "StatefulSet")[0]
    volumes = {v["name"] for v in sts["spec"]["template"]["spec"]["volumes"]}

    if sr.storage.persistence == "none":
        assert "volumeClaimTemplates" not in sts["spec"]
        assert "data" in volumes
    else:
        claims = sts["spec"]["volumeClaimTemplates"]
        assert [claim["metadata"]["name"] for claim in claims] == ["data"]
        assert claims[0]["spec"]["resources"]["requests"]["storage"] == "1Gi"
        assert "data" not in volumes


def test_claims_retained_by_default():
    sr, generated = build({"storage": {"persistence": "rdb", "storageClassName": "fast"}})

    spec_fields = statefulset(sr, generated)["spec"]

    assert spec_fields["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    assert spec_fields["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast"


def test_pod_labels_and_role():
    sr, generated = build({"mode": "replication", "podLabels": {"team": "shop"},
                           "podAnnotations": {"note": "x"}})

    template = statefulset(sr, generated)["spec"]["template"]

    assert template["metadata"]["labels"]["team"] == "shop"
    assert template["metadata"]["labels"]["secureredis.io/role"] == "replica"
    assert template["metadata"]["annotations"]["note"] == "x"


def test_metrics_sidecar():
    sr, generated = build({"metrics": {"enabled": True, "image": "exporter:1",
                                       "scrapers": [{"namespaceSelector": {"matchLabels": {"team": "metrics"}}}]}})

    children = render_all(sr, generated)
    containers = {c["name"]: c for c in pod_spec(children)["containers"]}
    exporter = containers["exporter"]
    env = {e["name"]: e for e in exporter["env"]}
    ingress_ports = [rule["ports"][0]["port"]
                     for rule in by_kind(children, "NetworkPolicy")[0]["spec"]["ingress"]]

    assert exporter["image"] == "exporter:1"
    assert exporter["securityContext"]["readOnlyRootFilesystem"] is True
    assert "secretKeyRef" in env["REDIS_PASSWORD"]["valueFrom"]
    assert "value" not in env["REDIS_PASSWORD"]
    assert 9121 in ingress_ports


def test_no_sidecar_by_default(rendered):
    _, _, children = rendered

    assert [c["name"] for c in pod_spec(children)["containers"]] == ["redis"]


# NetworkPolicy

def rules_from(policy: dict, peer: dict) -> list[dict]:
    return [rule for rule in policy["spec"]["ingress"] if peer in rule["from"]]


def port_set(rule: dict) -> set[tuple[str, int]]:
    return {(port["protocol"], port["port"]) for port in rule["ports"]}


def test_policy_types(rendered):
    sr, _, children = rendered

    policy = by_kind(children, "NetworkPolicy")[0]

    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["podSelector"] == {"matchLabels": names.selector_labels(sr.name)}


def test_client_port_from_label(rendered):
    sr, _, children = rendered

    policy = by_kind(children, "NetworkPolicy")[0]
    client_peer = {"podSelector": {"matchLabels": {"secureredis.io/client-demo": "true"}}}
    rules = rules_from(policy, client_peer)

    assert len(rules) == 1
    assert rules[0]["from"] == [client_peer]
    assert port_set(rules[0]) == {("TCP", 6379)}


def test_own_pods_both_ports(rendered):
    sr, _, children = rendered

    policy = by_kind(children, "NetworkPolicy")[0]
    own = {"podSelector": {"matchLabels": names.selector_labels(sr.name)}}
    rules = rules_from(policy, own)

    assert len(rules) == 1
    assert port_set(rules[0]) == {("TCP", 6379), ("TCP", 16379)}


def test_operator_peer(standalone):
    sr, _ = standalone
    context = RenderContext(operator_namespace="ops")

    policy = network_policy(sr, context)
    operator_rules = [rule for rule in policy["spec"]["ingress"]
                      if "namespaceSelector" in rule["from"][0]]

    assert len(operator_rules) == 1
    peer = operator_rules[0]["from"][0]
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "ops"}}
    assert peer["podSelector"] == {"matchLabels": context.operator_pod_labels}
    assert port_set(operator_rules[0]) == {("TCP", 6379)}


def test_only_three_ingress_rules(rendered):
    _, _, children = rendered

    policy = by_kind(children, "NetworkPolicy")[0]

    assert len(policy["spec"]["ingress"]) == 3
    assert all(rule["from"] for rule in policy["spec"]["ingress"])


def test_egress_dns_and_own_pods(rendered):
    sr, _, children = rendered

    egress = by_kind(children, "NetworkPolicy")[0]["spec"]["egress"]
    dns = [rule for rule in egress if "to" not in rule]
    peers = [rule for rule in egress if "to" in rule]

    assert len(egress) == 2
    assert len(dns) == 1
    assert port_set(dns[0]) == {("UDP", 53), ("TCP", 53)}
    assert peers[0]["to"] == [{"podSelector": {"matchLabels": names.selector_labels(sr.name)}}]
    assert port_set(peers[0]) == {("TCP", 6379), ("TCP", 16379)}


def test_custom_clients():
    clients = [{"namespaceSelector": {"matchLabels": {"team": "web"}}}]
    sr, _ = build({"networkPolicy": {"clients": clients}})

    policy = network_policy(sr, RenderContext())

    assert policy["spec"]["ingress"][0]["from"] == clients


def test_policy_disabled():
    sr, generated = build({"networkPolicy": {"enabled": False}})

    assert by_kind(render_all(sr, generated), "NetworkPolicy") == []


# PodDisruptionBudget

def test_pdb(rendered):
    sr, _, children = rendered

    pdb = by_kind(children, "PodDisruptionBudget")[0]

    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == {"matchLabels": names.selector_labels(sr.name)}


def test_pdb_max_unavailable():
    sr, _ = build({"mode": "replication", "podDisruptionBudget": {"maxUnavailable": 2}})

    assert pod_disruption_budget(sr)["spec"]["maxUnavailable"] == 2


def test_pdb_disabled():
    sr, generated = build({"podDisruptionBudget": {"enabled": False}})

    assert by_kind(render_all(sr, generated), "PodDisruptionBudget") == []


# metadata and rollouts

def test_owner_references_with_uid(rendered):
    sr, _, children = rendered

    for child in children:
        references = child["metadata"]["ownerReferences"]
        assert len(references) == 1
        assert references[0]["uid"] == UID
        assert references[0]["kind"] == "SecureRedis"
        assert references[0]["apiVersion"] == "secureredis.io/v1alpha1"
        assert references[0]["name"] == sr.name
        assert references[0]["controller"] is True


def test_no_owner_without_uid():
    sr, generated = build()

    for child in render_all(sr, generated):
        assert "ownerReferences" not in child["metadata"]


def test_children_namespaced_and_labelled(rendered):
    sr, _, children = rendered

    for child in children:
        assert child["metadata"]["namespace"] == "apps"
        assert child["metadata"]["labels"]["app.kubernetes.io/instance"] == sr.name


def test_children_order(rendered):
    _, _, children = rendered

    kinds = [child["kind"] for child in children]

    assert kinds.index("NetworkPolicy") < kinds.index("StatefulSet")
    assert kinds.index("Secret") < kinds.index("StatefulSet")
    assert kinds.index("ConfigMap") < kinds.index("StatefulSet")


def test_hash_changes_with_conf(standalone):
    sr, generated = standalone
    bigger = replace(sr, memory=replace(sr.memory, maxmemory_bytes=sr.memory.maxmemory_bytes + 1))

    assert redisconf.config_hash(bigger, generated) != redisconf.config_hash(sr, generated)


def test_hash_changes_with_renames(standalone):
    sr, generated = standalone
    renamed = replace(generated, renames={**generated.renames, "keys": ""})

    assert redisconf.config_hash(sr, renamed) != redisconf.config_hash(sr, generated)


def test_hash_ignores_passwords(standalone):
    sr, generated = standalone
    replication = generated.system["replication"]
    rotated = replace(generated, system={
        **generated.system,
        "replication": replace(replication, passwords=(credentials.generate_password(),)),
    }, users={
        name: replace(credential, passwords=(credentials.generate_password(),))
        for name, credential in generated.users.items()
    })

    assert redisconf.config_hash(sr, rotated) == redisconf.config_hash(sr, generated)


def test_hash_annotation(standalone):
    sr, generated = standalone

    annotations = statefulset(sr, generated)["spec"]["template"]["metadata"]["annotations"]

    assert annotations["secureredis.io/config-hash"] == redisconf.config_hash(sr, generated)


def test_load_spec_renders_users(standalone):
    sr, _ = standalone

    assert [u.name for u in sr.users] == [u["name"] for u in USERS]
    assert isinstance(sr, spec.SecureRedis)
