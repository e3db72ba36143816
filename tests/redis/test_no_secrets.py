"""No password or private key in a ConfigMap, redis.conf, an argv or the server's log.

Secrets are listed by ``secret_values``: every application and system user's
password and every private key, plus the random names of renamed commands,
which the operator keeps in a Secret. Failure messages name the object, key
or line and the kind of secret found, never the value.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis

from secureredis import credentials
from secureredis import material as material_module
from secureredis import spec
from secureredis.material import Credential
from secureredis.redisconf import private_conf, redis_conf
from secureredis.render import render_all
from secureredis.render.statefulset import probe_command, server_args

from redis_harness import (
    Secret, find_secrets, remember_secrets, secret_values, secure_redis_object,
)

pytestmark = pytest.mark.redis

ROTATED = Credential("cache_reader", (credentials.generate_password(),))
ROTATED_SECRET = Secret("rotated password of cache_reader", ROTATED.password)
remember_secrets([ROTATED_SECRET])

# One command each user may run, so every user logs in once.
LOGIN_CALLS = {
    "cache_reader": ("GET", "cache:anything"),
    "app_service": ("GET", "app:anything"),
    "redis_admin": ("ACL", "WHOAMI"),
    "operator": ("PING",),
    "probe": ("PING",),
    "exporter": ("PING",),
}


def secrets_of(material) -> list[Secret]:
    secrets = secret_values(material)
    for command, new_name in material.renames.items():
        if new_name:
            secrets.append(Secret(f"new name of {command.upper()}", new_name))
    return secrets


@pytest.fixture(scope="module")
def secrets(server) -> list[Secret]:
    return secrets_of(server.material) + [ROTATED_SECRET]


@pytest.fixture(scope="module")
def exercised(server):
    """Drive the server through logins, failures, a rotation and a reload before its log is read."""
    for user, call in LOGIN_CALLS.items():
        server.client(user).execute_command(*call)

    wrong = server.connect("cache_reader", "not-the-password-of-anyone",
                           tls_files=server.client_files["cache_reader"])
    with pytest.raises(redis.AuthenticationError):
        wrong.ping()
    no_certificate = server.connect("cache_reader", server.credential("cache_reader").password)
    with pytest.raises(redis.ConnectionError):
        no_certificate.ping()

    operator = server.client("operator")
    operator.execute_command("ACL", "SETUSER", "cache_reader", f">{ROTATED.password}")
    rotated = server.connect("cache_reader", ROTATED.password,
                             tls_files=server.client_files["cache_reader"])
    rotated.get("cache:anything")
    operator.execute_command(server.renamed("config"), "SET", "masterauth",
                             server.credential("replication").password)
    operator.execute_command(server.renamed("config"), "SET",
                             "tls-cert-file", server.paths.cert_file,
                             "tls-key-file", server.paths.key_file,
                             "tls-ca-cert-file", server.paths.ca_file)
    return server


def config_maps(sr, material) -> list[dict]:
    return [obj for obj in render_all(sr, material) if obj["kind"] == "ConfigMap"]


def leaks_in_mapping(label: str, data: dict[str, str], secrets: list[Secret]) -> list[str]:
    """Describe each key of ``data`` that contains a secret, without the secret."""
    leaks = []
    for key, value in data.items():
        found = find_secrets(value, secrets)
        if found:
            leaks.append(f"{label} key {key}: {', '.join(found)}")
    return leaks


def leaks_in_lines(label: str, lines: list[str], secrets: list[Secret]) -> list[str]:
    """Describe each line (by index) that contains a secret, without the secret."""
    leaks = []
    for index, line in enumerate(lines):
        found = find_secrets(line, secrets)
        if found:
            leaks.append(f"{label} line {index}: {', '.join(found)}")
    return leaks


def test_scanner_finds_planted_secrets(server, secrets):
    # private.conf is meant to hold secrets; finding them shows the scan works.
    found = find_secrets(private_conf(server.material), secrets)
    assert "password 0 of system user replication" in found
    assert "new name of CONFIG" in found
    assert "private key of the CA" in find_secrets(server.material.ca.key_pem, secrets)
    assert "a PEM private key header" in find_secrets(server.material.server.key_pem, [])


def test_render_has_two_config_maps(server):
    names = sorted(obj["metadata"]["name"] for obj in config_maps(server.sr, server.material))
    assert names == ["cache-acl", "cache-config"]


def test_config_maps_hold_no_secrets(server, secrets):
    leaks = []
    for obj in config_maps(server.sr, server.material):
        leaks += leaks_in_mapping(f"ConfigMap {obj['metadata']['name']}", obj["data"], secrets)
    assert leaks == []


@pytest.mark.parametrize("mode, extra", [
    ("replication", {"replicas": 3}),
    ("cluster", {"cluster": {"shards": 3, "replicasPerShard": 1}}),
])
def test_other_modes_config_maps_clean(mode, extra):
    sr = spec.load(secure_redis_object("multi", mode=mode, **extra))
    material = material_module.ensure(sr, None, now=datetime.now(timezone.utc))
    leaks = []
    for obj in config_maps(sr, material):
        leaks += leaks_in_mapping(f"ConfigMap {obj['metadata']['name']}", obj["data"],
                                  secrets_of(material))
    assert leaks == []


def test_users_acl_holds_hashes(server):
    acl_map = next(obj for obj in config_maps(server.sr, server.material)
                   if obj["metadata"]["name"] == "cache-acl")
    hashes_present = [f"#{digest}" in acl_map["data"]["users.acl"]
                      for credential in server.material.users.values()
                      for digest in credential.hashes]
    assert hashes_present == [True] * len(hashes_present)


def test_pod_redis_conf_holds_no_secrets(server, secrets):
    leaks = leaks_in_lines("pod redis.conf", redis_conf(server.sr).splitlines(), secrets)
    assert leaks == []


def test_local_redis_conf_holds_no_secrets(server, secrets):
    conf_path = Path(server.argv[1])
    leaks = leaks_in_lines("local redis.conf", conf_path.read_text().splitlines(), secrets)
    assert leaks == []


def test_server_args_hold_no_secrets(server, secrets):
    assert leaks_in_lines("server_args", server_args(server.sr), secrets) == []


def test_probe_command_holds_no_secrets(server, secrets):
    pod_probe = probe_command(server.sr)
    local_probe = probe_command(server.sr, server.paths, server.port)
    assert leaks_in_lines("pod probe argv", pod_probe, secrets) == []
    assert leaks_in_lines("local probe argv", local_probe, secrets) == []


def test_statefulset_holds_no_secrets(server, secrets):
    statefulset = next(obj for obj in render_all(server.sr, server.material)
                       if obj["kind"] == "StatefulSet")
    containers = statefulset["spec"]["template"]["spec"]["containers"]
    leaks = []
    for container in containers:
        text = json.dumps(container, indent=1)
        leaks += leaks_in_lines(f"container {container['name']}", text.splitlines(), secrets)
    assert leaks == []


def test_started_argv_holds_no_secrets(server, secrets):
    assert leaks_in_lines("redis-server argv", server.argv, secrets) == []


def test_process_title_holds_no_secrets(server, secrets):
    # redis-server replaces its argv in /proc with a title (proc-title-template,
    # "{title} {listen-addr} {server-mode}"), so this is what ps shows.
    raw = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()
    shown = raw.decode(errors="replace").split("\0")
    assert shown[0] == f"{server.argv[0]} 127.0.0.1:{server.port}"
    assert leaks_in_lines("/proc cmdline", shown, secrets) == []


def test_server_log_holds_no_secrets(exercised, secrets):
    lines = exercised.log_text().splitlines()
    assert len(lines) > 5
    assert leaks_in_lines("redis-server log", lines, secrets) == []
