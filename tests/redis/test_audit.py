"""``secure-redis audit`` and redisadmin against real redis-server processes on loopback.

One server runs the files rendered for manifests/examples/standalone.yaml;
another is a plain ``redis-server`` with its defaults. Both listen only on
127.0.0.1 on free ports and are killed after the module. The fixtures here
are this module's own, so changes to the shared harness do not move them.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest
import redis
import yaml

from secureredis import cli, material, redisadmin, spec
from secureredis.checks import FAIL, PASS, UNKNOWN
from secureredis.material import Material
from secureredis.redisconf import Paths, private_conf, redis_conf, users_acl

pytestmark = pytest.mark.redis

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "manifests" / "examples" / "standalone.yaml"
LOOPBACK = "127.0.0.1"
READY_LINE = "Ready to accept connections"
START_TIMEOUT_SECONDS = 10.0
OPERATOR_USER = "secureredis-operator"
NAMESPACE = "audit-tests"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def write_file(path: Path, text: str, mode: int = 0o644) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def start_server(argv: list[str], directory: Path) -> subprocess.Popen:
    """Start redis-server with ``argv`` and wait until its log reports it accepts connections."""
    log_path = directory / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=directory)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while READY_LINE not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"redis-server did not start; its log:\n{log_path.read_text()}")
        time.sleep(0.05)
    return process


@dataclass
class Hardened:
    """A server running the rendered standalone example, and the files a client needs."""

    port: int
    material: Material
    ca_file: str
    client_files: dict[str, tuple[str, str]]

    def __repr__(self) -> str:
        # The material contains passwords and private keys, which must stay
        # out of test reports.
        return f"Hardened(port={self.port})"

    def password(self, user: str) -> str:
        if user == OPERATOR_USER:
            return self.material.system["operator"].password
        return self.material.users[user].password

    def renamed_options(self) -> list[str]:
        options = []
        for command, name in sorted(self.material.renames.items()):
            options += ["--renamed", f"{command}={name}"]
        return options

    def tls_options(self, user: str) -> list[str]:
        cert, key = self.client_files[user]
        return ["--cacert", self.ca_file, "--cert", cert, "--key", key]


@pytest.fixture(scope="module")
def hardened(tmp_path_factory) -> Iterator[Hardened]:
    obj = yaml.safe_load(EXAMPLE.read_text())
    obj["metadata"]["namespace"] = NAMESPACE
    sr = spec.load(obj)
    generated = material.ensure(sr, None, now=datetime.now(timezone.utc))

    directory = tmp_path_factory.mktemp("hardened")
    paths = Paths(tls_dir=str(directory / "tls"), acl_file=str(directory / "acl" / "users.acl"),
                  private_conf=str(directory / "private" / "private.conf"),
                  data_dir=str(directory / "data"))
    (directory / "data").mkdir()
    write_file(Path(paths.cert_file), generated.server.cert_pem)
    write_file(Path(paths.key_file), generated.server.key_pem, 0o600)
    ca_file = write_file(Path(paths.ca_file), generated.trusted_cas)
    write_file(Path(paths.acl_file), users_acl(sr, generated))
    write_file(Path(paths.private_conf), private_conf(generated), 0o600)
    port = free_port()
    conf = write_file(directory / "redis.conf",
                      redis_conf(sr, paths, tls_port=port, bus_port=free_port()))

    client_files = {}
    credentials = {OPERATOR_USER: generated.system["operator"], **generated.users}
    for user, credential in credentials.items():
        client_files[user] = (
            write_file(directory / "clients" / f"{user}.crt", credential.client_cert.cert_pem),
            write_file(directory / "clients" / f"{user}.key", credential.client_cert.key_pem,
                       0o600),
        )

    process = start_server(["redis-server", conf], directory)
    yield Hardened(port, generated, ca_file, client_files)
    process.kill()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def plain_port(tmp_path_factory) -> Iterator[int]:
    """Start ``redis-server`` with its defaults apart from the port, loopback and no RDB file."""
    port = free_port()
    process = start_server(
        ["redis-server", "--port", str(port), "--bind", LOOPBACK, "--save", ""],
        tmp_path_factory.mktemp("plain"))
    yield port
    process.kill()
    process.wait(timeout=10)


@pytest.fixture
def no_password_env(monkeypatch):
    monkeypatch.delenv(cli.PASSWORD_ENV_DEFAULT, raising=False)


def run_audit(capsys, argv: list[str]) -> tuple[int, dict[str, str], str]:
    """Run ``secure-redis audit --output json``; return the exit code, outcomes and output."""
    code = cli.main(["audit", *argv, "--output", "json"])
    captured = capsys.readouterr()
    outcomes = {}
    if captured.out:
        outcomes = {c["id"]: c["outcome"] for c in json.loads(captured.out)["checks"]}
    return code, outcomes, captured.out + captured.err


def hardened_url(server: Hardened, user: str) -> str:
    return f"rediss://{user}@{LOOPBACK}:{server.port}"


def audit_as(capsys, monkeypatch, server: Hardened, user: str,
             *options: str) -> tuple[int, dict[str, str], str]:
    monkeypatch.setenv(cli.PASSWORD_ENV_DEFAULT, server.password(user))
    return run_audit(capsys, [hardened_url(server, user), *server.tls_options(user),
                              "--admin", "redis_admin", *options])


def admin_client(server: Hardened) -> redis.Redis:
    cert, key = server.client_files["redis_admin"]
    return redisadmin.connect(LOOPBACK, server.port, ca_file=server.ca_file, cert_file=cert,
                              key_file=key, username="redis_admin",
                              password=server.password("redis_admin"))


# Passwords are stored as hashes, so only the audit's own password has a known
# length. The process user shows only in a pod template.
OPERATOR_OUTCOMES = {
    "bind-not-wildcard": PASS,
    "protected-mode": PASS,
    "default-user-off": PASS,
    "least-privilege-users": PASS,
    "dangerous-blocked": PASS,
    "password-strength": UNKNOWN,
    "tls-enabled": PASS,
    "commands-renamed": PASS,
    "not-exposed": PASS,
    "non-root": UNKNOWN,
    "maxmemory-set": PASS,
    "acl-log-enabled": PASS,
}


def test_audit_hardened_as_operator(capsys, monkeypatch, hardened):
    code, outcomes, output = audit_as(capsys, monkeypatch, hardened, OPERATOR_USER,
                                      *hardened.renamed_options())

    assert code == 0
    assert FAIL not in outcomes.values()
    assert outcomes == OPERATOR_OUTCOMES
    assert hardened.password(OPERATOR_USER) not in output


def test_operator_audit_keeps_acl_log_empty(capsys, monkeypatch, hardened):
    admin = admin_client(hardened)
    admin.execute_command("ACL", "LOG", "RESET")

    audit_as(capsys, monkeypatch, hardened, OPERATOR_USER, *hardened.renamed_options())

    entries = admin.execute_command("ACL", "LOG")
    admin.close()
    assert [e for e in entries if OPERATOR_USER in str(e)] == []


def test_audit_hardened_as_admin(capsys, monkeypatch, hardened):
    code, outcomes, output = audit_as(capsys, monkeypatch, hardened, "redis_admin",
                                      *hardened.renamed_options())

    assert code == 0
    assert outcomes == OPERATOR_OUTCOMES
    assert hardened.password("redis_admin") not in output


def test_audit_text_output(capsys, monkeypatch, hardened):
    monkeypatch.setenv(cli.PASSWORD_ENV_DEFAULT, hardened.password("redis_admin"))

    code = cli.main(["audit", hardened_url(hardened, "redis_admin"),
                     *hardened.tls_options("redis_admin"), "--admin", "redis_admin",
                     *hardened.renamed_options()])

    out = capsys.readouterr().out
    assert code == 0
    assert "PASS     tls-enabled:" in out
    assert "UNKNOWN  non-root:" in out
    assert "10/12 checks passed, 0 failed, 2 unknown." in out


def test_audit_without_renames_reads_info(capsys, monkeypatch, hardened):
    # CONFIG is served under a random name that the audit is not given, so
    # the settings that only CONFIG GET reads are unknown. INFO still gives
    # maxmemory, and ACL DRYRUN cannot find the renamed commands.
    code, outcomes, _ = audit_as(capsys, monkeypatch, hardened, "redis_admin")

    assert code == 0
    assert outcomes["bind-not-wildcard"] == UNKNOWN
    assert outcomes["protected-mode"] == UNKNOWN
    assert outcomes["acl-log-enabled"] == UNKNOWN
    assert outcomes["tls-enabled"] == UNKNOWN
    assert outcomes["maxmemory-set"] == PASS
    assert outcomes["dangerous-blocked"] == UNKNOWN
    assert outcomes["commands-renamed"] == PASS


def test_audit_without_admin_fails_admin_user(capsys, monkeypatch, hardened):
    monkeypatch.setenv(cli.PASSWORD_ENV_DEFAULT, hardened.password("redis_admin"))

    code, outcomes, _ = run_audit(capsys, [
        hardened_url(hardened, "redis_admin"), *hardened.tls_options("redis_admin"),
        *hardened.renamed_options()])

    assert code == 1
    assert outcomes["least-privilege-users"] == FAIL
    assert outcomes["dangerous-blocked"] == FAIL


# A plain redis-server 7.0 with defaults, audited as the default user:
# - default-user-off: default is "on nopass ~* &* +@all";
# - least-privilege-users: default, the only account, can run every command;
# - dangerous-blocked: ACL DRYRUN allows default every @dangerous command;
# - password-strength: default has nopass;
# - tls-enabled: the connection is plain TCP and tls-port is 0;
# - commands-renamed: FLUSHALL, FLUSHDB, CONFIG and SHUTDOWN keep their names
#   (DEBUG is blocked by enable-debug-command no, the 7.0 default);
# - maxmemory-set: maxmemory defaults to 0.
# bind (127.0.0.1 from the command line), protected-mode (yes by default),
# not-exposed (loopback only) and acl-log-enabled (128 entries) pass.
PLAIN_FAILURES = {"default-user-off", "least-privilege-users", "dangerous-blocked",
                  "password-strength", "tls-enabled", "commands-renamed", "maxmemory-set"}


def test_audit_plain_server_fails(capsys, no_password_env, plain_port):
    code, outcomes, _ = run_audit(capsys, [f"redis://{LOOPBACK}:{plain_port}"])

    failed = {check for check, outcome in outcomes.items() if outcome == FAIL}
    assert code == 1
    assert failed == PLAIN_FAILURES
    assert outcomes["bind-not-wildcard"] == PASS
    assert outcomes["protected-mode"] == PASS
    assert outcomes["not-exposed"] == PASS
    assert outcomes["acl-log-enabled"] == PASS
    assert outcomes["non-root"] == UNKNOWN


def test_audit_plain_server_text_names_fix(capsys, no_password_env, plain_port):
    code = cli.main(["audit", f"redis://{LOOPBACK}:{plain_port}"])

    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL     default-user-off:" in out
    assert "fix: Switch the default user off" in out


def test_audit_closed_port_exits_2(capsys, no_password_env):
    code, outcomes, output = run_audit(capsys, [f"redis://{LOOPBACK}:{free_port()}"])

    assert code == 2
    assert outcomes == {}
    assert "refused" in output


def test_audit_wrong_ca_exits_2(capsys, monkeypatch, hardened, tmp_path):
    other = material.ensure(spec.load(yaml.safe_load(EXAMPLE.read_text())), None,
                            now=datetime.now(timezone.utc))
    other_ca = write_file(tmp_path / "other-ca.crt", other.ca.cert_pem)
    cert, key = hardened.client_files["redis_admin"]
    monkeypatch.setenv(cli.PASSWORD_ENV_DEFAULT, hardened.password("redis_admin"))

    code, _, output = run_audit(capsys, [hardened_url(hardened, "redis_admin"),
                                         "--cacert", other_ca, "--cert", cert, "--key", key])

    assert code == 2
    assert "failed verification" in output


def test_audit_without_client_certificate_exits_2(capsys, monkeypatch, hardened):
    monkeypatch.setenv(cli.PASSWORD_ENV_DEFAULT, hardened.password("redis_admin"))

    code, _, output = run_audit(capsys, [hardened_url(hardened, "redis_admin"),
                                         "--cacert", hardened.ca_file])

    assert code == 2
    assert "client certificate" in output


def test_audit_wrong_password_exits_2(capsys, monkeypatch, hardened):
    wrong = "not-the-password-" * 3
    monkeypatch.setenv(cli.PASSWORD_ENV_DEFAULT, wrong)

    code, _, output = run_audit(capsys, [hardened_url(hardened, "redis_admin"),
                                         *hardened.tls_options("redis_admin")])

    assert code == 2
    assert "authentication as redis_admin failed" in output
    assert wrong not in output


def test_audit_password_file(capsys, no_password_env, hardened, tmp_path):
    password_file = write_file(tmp_path / "password",
                               hardened.password("redis_admin") + "\n", 0o600)

    code, outcomes, _ = run_audit(capsys, [
        hardened_url(hardened, "redis_admin"), *hardened.tls_options("redis_admin"),
        "--password-file", password_file, "--admin", "redis_admin",
        *hardened.renamed_options()])

    assert code == 0
    assert outcomes["dangerous-blocked"] == PASS


def test_audit_password_in_url_exits_2(capsys, no_password_env, hardened):
    code, _, output = run_audit(capsys, [f"rediss://redis_admin:secret@{LOOPBACK}:1"])

    assert code == 2
    assert "--password-env" in output


def test_audit_missing_password_env_exits_2(capsys, no_password_env, hardened):
    code, _, output = run_audit(capsys, [hardened_url(hardened, "redis_admin"),
                                         "--password-env", "AUDIT_TEST_UNSET_VARIABLE"])

    assert code == 2
    assert "AUDIT_TEST_UNSET_VARIABLE" in output


def test_connect_verifies_server_hostname(hardened):
    cert, key = hardened.client_files["redis_admin"]
    options = dict(ca_file=hardened.ca_file, cert_file=cert, key_file=key,
                   username="redis_admin", password=hardened.password("redis_admin"))

    client = redisadmin.connect(LOOPBACK, hardened.port,
                                server_hostname=f"cache.{NAMESPACE}.svc", **options)
    assert client.ping() is True
    client.close()

    with pytest.raises(redisadmin.RedisAdminError, match="failed verification"):
        redisadmin.connect(LOOPBACK, hardened.port, server_hostname="cache.elsewhere.svc",
                           **options)


def test_connect_skip_hostname_still_verifies_chain(hardened):
    cert, key = hardened.client_files["redis_admin"]

    client = redisadmin.connect(LOOPBACK, hardened.port, ca_file=hardened.ca_file,
                                cert_file=cert, key_file=key, username="redis_admin",
                                password=hardened.password("redis_admin"),
                                server_hostname="cache.elsewhere.svc", check_hostname=False)

    assert client.ping() is True
    client.close()


def test_connect_with_pem_client_certificate(hardened):
    credential = hardened.material.system["operator"]

    client = redisadmin.connect(LOOPBACK, hardened.port, ca_pem=hardened.material.trusted_cas,
                                cert_pem=credential.client_cert.cert_pem,
                                key_pem=credential.client_cert.key_pem,
                                username=OPERATOR_USER, password=credential.password)

    assert client.ping() is True
    assert client.connection.tls_version == "TLSv1.3"
    client.close()


def test_gather_facts_tls_session(hardened):
    client = admin_client(hardened)

    facts = redisadmin.gather_facts(client, hardened.material.renames)
    client.close()

    assert facts.tls_version == "TLSv1.3"
    assert facts.hostname_verified is True
    assert facts.client_certificate_required is True
    assert facts.config["port"] == "0"
    assert facts.config["tls-auth-clients"] == "yes"
    assert facts.notes == ()


def test_gather_facts_disabled_command_verdicts(hardened):
    client = admin_client(hardened)

    facts = redisadmin.gather_facts(client, hardened.material.renames)
    client.close()

    reader = facts.dangerous_verdicts["cache_reader"]
    admin = facts.dangerous_verdicts["redis_admin"]
    assert reader["flushall"] == "missing"
    assert reader["config|get"] == "denied"
    assert admin["config|get"] == "allowed"
    assert admin["keys"] == "allowed"
