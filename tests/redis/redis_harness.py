"""Run a real redis-server with the files the operator renders, and connect to it.

Each server reads redis.conf, users.acl and private.conf rendered for a test
SecureRedis, presents a server certificate from ``material.ensure`` and
listens only on loopback (127.0.0.1, and ::1 where the host has it) on a free
TLS port. redis.conf sets ``logfile ""``, so the server logs to stdout, which
goes to a file the tests read.

Passwords and private keys stay out of test reports under pytest's default
options (no --showlocals). Clients get them from the material directly, and
any text shown on failure goes through ``RedisServer.redact`` first.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from secureredis import material as material_module
from secureredis import spec
from secureredis.material import Credential, Material
from secureredis.redisconf import Paths, private_conf, redis_conf, users_acl
from secureredis.render.statefulset import CONF_DIR, server_args

LOOPBACK = "127.0.0.1"
READY_LINE = "Ready to accept connections"
START_TIMEOUT_SECONDS = 10.0
CLIENT_TIMEOUT_SECONDS = 5.0
# From <linux/prctl.h>.
PR_SET_PDEATHSIG = 1
PRIVATE_KEY_MARKER = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def secure_redis_object(name: str = "cache", **spec_fields: Any) -> dict:
    """Return a SecureRedis with the hardening guide's three users and non-default limits.

    The limits differ from the operator's defaults, so a test that reads them
    back from the server shows the spec reached redis.conf.
    """
    spec_body: dict[str, Any] = {
        "mode": "standalone",
        "storage": {"persistence": "none"},
        "memory": {"maxmemory": "48Mi", "policy": "allkeys-lru"},
        "slowlog": {"slowerThanMicroseconds": 2500, "maxLen": 32},
        "aclLog": {"maxLen": 64},
        "acl": {"users": [
            {"name": "cache_reader",
             "rules": ["~cache:*", "+get", "+mget", "+hget", "+hgetall", "+lrange", "+smembers"]},
            {"name": "app_service", "rules": ["~app:*", "+@all"]},
            {"name": "redis_admin", "admin": True, "rules": ["~*", "&*", "+@all"]},
        ]},
    }
    spec_body.update(spec_fields)
    return {
        "apiVersion": "secureredis.io/v1alpha1",
        "kind": "SecureRedis",
        "metadata": {"name": name, "namespace": "redis-tests"},
        "spec": spec_body,
    }


class TLSFiles(NamedTuple):
    """Paths of a PEM certificate and its private key."""

    cert: str
    key: str


@dataclass(frozen=True)
class Secret:
    """A value that must never leak, with a description that is safe to print."""

    description: str
    value: str = field(repr=False)


# Every secret a test has generated in this run, so failure reports can be
# redacted (see conftest.py) whichever frame or fixture held the value.
# Keyed by value, so remembering a secret twice keeps one entry.
KNOWN_SECRETS: dict[str, Secret] = {}


def remember_secrets(secrets: list[Secret]) -> None:
    for secret in secrets:
        KNOWN_SECRETS.setdefault(secret.value, secret)


def redact_known_secrets(text: str) -> str:
    """Replace every secret in KNOWN_SECRETS found in ``text`` by its description."""
    # Longest first, so a whole private key is replaced before its lines.
    for secret in sorted(KNOWN_SECRETS.values(), key=lambda known: -len(known.value)):
        text = text.replace(secret.value, f"<{secret.description}>")
    return text


def secret_values(material: Material) -> list[Secret]:
    """List every password and private key in ``material``, and remember them for redaction.

    A private key is listed whole and also line by line, so a key that was
    re-wrapped or cut short is still found.
    """
    secrets = []
    for name, credential in material.users.items():
        for index, password in enumerate(credential.passwords):
            secrets.append(Secret(f"password {index} of user {name}", password))
    for role, credential in material.system.items():
        for index, password in enumerate(credential.passwords):
            secrets.append(Secret(f"password {index} of system user {role}", password))

    keys = {"CA": material.ca.key_pem, "server certificate": material.server.key_pem}
    for owner, credentials in (("user", material.users), ("system user", material.system)):
        for name, credential in credentials.items():
            if credential.client_cert:
                keys[f"client certificate of {owner} {name}"] = credential.client_cert.key_pem
    for owner, pem in keys.items():
        secrets.append(Secret(f"private key of the {owner}", pem))
        for number, line in enumerate(pem.splitlines()):
            if not line.startswith("-----"):
                secrets.append(Secret(f"line {number} of the private key of the {owner}", line))
    remember_secrets(secrets)
    remember_secrets([Secret(f"new name of {command.upper()}", new_name)
                      for command, new_name in material.renames.items() if new_name])
    return secrets


def find_secrets(text: str, secrets: list[Secret]) -> list[str]:
    """Return the descriptions of the secrets that occur in ``text``, never the values."""
    found = [secret.description for secret in secrets if secret.value in text]
    if PRIVATE_KEY_MARKER.search(text):
        found.append("a PEM private key header")
    return found


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def local_server_args(sr: spec.SecureRedis, conf_path: Path,
                      pod_name: str | None = None) -> list[str]:
    """Return ``server_args`` adapted to this host: the local redis.conf and no pod IP.

    In a pod ``--bind $(POD_IP) 127.0.0.1 -::1`` binds the pod IP and loopback.
    This host has no pod IP, and binding 127.0.0.1 twice fails with "Address
    already in use", so the ``$(POD_IP)`` entry is dropped and the rest kept.
    ``$(POD_NAME)``, which cluster mode uses in the announced host name, is
    replaced by ``pod_name`` (default: the StatefulSet's pod 0). In replication
    mode a pod starts as a replica of the client Service, a name this host
    cannot resolve; tests wire replication themselves, so that is dropped.
    """
    args = server_args(sr)
    assert args[0] == f"{CONF_DIR}/redis.conf", "server_args no longer starts with redis.conf"
    assert "$(POD_IP)" in args, "server_args no longer binds the pod IP"
    if "--replicaof" in args:
        at = args.index("--replicaof")
        args = args[:at] + args[at + 3:]
    pod_name = pod_name or f"{sr.name}-0"
    return [str(conf_path)] + [arg.replace("$(POD_NAME)", pod_name)
                               for arg in args[1:] if arg != "$(POD_IP)"]


@dataclass
class RedisServer:
    """A running redis-server with the files rendered for ``sr`` and ``material``."""

    sr: spec.SecureRedis
    material: Material
    directory: Path
    paths: Paths
    port: int
    argv: list[str]
    log_path: Path
    process: subprocess.Popen
    client_files: dict[str, TLSFiles]
    clients: list[redis.Redis] = field(default_factory=list)
    # The cluster bus port in cluster mode, else None.
    bus_port: int | None = None

    def __repr__(self) -> str:
        # Short, and without the material, for readable failure reports.
        return f"<RedisServer {self.sr.name} on {LOOPBACK}:{self.port}, pid {self.process.pid}>"

    @property
    def server_files(self) -> TLSFiles:
        return TLSFiles(self.paths.cert_file, self.paths.key_file)

    def renamed(self, command: str) -> str:
        """Return the name ``command`` is served under ("" when it is disabled)."""
        return self.material.renames[command]

    def credential(self, user: str) -> Credential:
        """Return the credential of an application user, or of a system user by role."""
        if user in self.material.users:
            return self.material.users[user]
        return self.material.system[user]

    def connect(self, username: str | None = None, password: str | None = None, *,
                tls_files: TLSFiles | None = None, protocol: int = 3,
                **options: Any) -> redis.Redis:
        """Open a client that verifies the server's chain and host name (127.0.0.1).

        Retries are off, so a rejected connection fails at once and leaves
        exactly one entry in the server's log and ACL LOG.
        """
        client = redis.Redis(
            host=LOOPBACK,
            port=self.port,
            username=username,
            password=password,
            protocol=protocol,
            ssl=True,
            ssl_ca_certs=self.paths.ca_file,
            ssl_certfile=tls_files.cert if tls_files else None,
            ssl_keyfile=tls_files.key if tls_files else None,
            ssl_check_hostname=True,
            socket_timeout=CLIENT_TIMEOUT_SECONDS,
            socket_connect_timeout=CLIENT_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
            **options,
        )
        self.clients.append(client)
        return client

    def client(self, user: str, *, protocol: int = 3) -> redis.Redis:
        """Open a client logged in as an application user, or as a system user by role.

        It presents the user's own client certificate, or the server
        certificate for system users without one, as the probe does.
        """
        credential = self.credential(user)
        tls_files = self.client_files.get(user, self.server_files)
        return self.connect(credential.username, credential.password, tls_files=tls_files,
                            protocol=protocol)

    def config_get(self, client: redis.Redis, parameter: str) -> str:
        """Read one setting through the renamed CONFIG command."""
        reply = client.execute_command(self.renamed("config"), "GET", parameter)
        if isinstance(reply, list):
            reply = dict(zip(reply[::2], reply[1::2]))
        return reply[parameter]

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_text(self, since: int = 0) -> str:
        with self.log_path.open("rb") as log:
            log.seek(since)
            return log.read().decode(errors="replace")

    def wait_for_log(self, text: str, *, since: int = 0, timeout: float = 3.0) -> bool:
        """Return True once ``text`` appears in the log after byte offset ``since``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_text(since):
                return True
            time.sleep(0.05)
        return text in self.log_text(since)

    def redact(self, text: str) -> str:
        """Replace every password, private key and new command name in ``text`` by its description."""
        secret_values(self.material)
        return redact_known_secrets(text)

    def stop(self) -> None:
        """Kill the server, then close the clients that were connected to it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for client in self.clients:
            client.close()


def tls_context(server: RedisServer, version: ssl.TLSVersion | None = None, *,
                tls_files: TLSFiles | None = None, ciphers: str | None = None) -> ssl.SSLContext:
    """Build a client context that trusts the server's CA and offers only ``version`` if given."""
    context = ssl.create_default_context(cafile=server.paths.ca_file)
    if version is not None:
        with warnings.catch_warnings():
            # Python deprecates TLS 1.1, but a test has to offer it.
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = version
            context.maximum_version = version
    if ciphers:
        context.set_ciphers(ciphers)
    if tls_files:
        context.load_cert_chain(tls_files.cert, tls_files.key)
    return context


def open_tls(server: RedisServer, context: ssl.SSLContext, *,
             server_hostname: str = LOOPBACK) -> ssl.SSLSocket:
    """Connect to 127.0.0.1 and complete the handshake, checking the certificate for ``server_hostname``."""
    raw = socket.create_connection((LOOPBACK, server.port), timeout=5)
    try:
        return context.wrap_socket(raw, server_hostname=server_hostname)
    except BaseException:
        raw.close()
        raise


def resp_command(*args: str) -> bytes:
    """Encode a command as a RESP array of bulk strings."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def read_lines(sock: socket.socket, count: int) -> list[bytes]:
    """Read ``count`` CRLF-terminated reply lines, or fewer if the server closes."""
    buffer = b""
    while buffer.count(b"\r\n") < count:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buffer += chunk
    return buffer.split(b"\r\n")[:count]


def send_raw(server: RedisServer, *commands: tuple[str, ...]) -> list[bytes]:
    """Send commands over a fresh mutual-TLS connection and return one reply line for each."""
    context = tls_context(server, tls_files=server.server_files)
    with open_tls(server, context) as tls:
        tls.sendall(b"".join(resp_command(*command) for command in commands))
        return read_lines(tls, len(commands))

def write_private_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)


def _die_with_parent() -> None:
    # Runs in the child before exec: the kernel sends SIGKILL to redis-server
    # when pytest exits, even when pytest itself is killed and skips teardown.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def _wait_until_ready(process: subprocess.Popen, log_path: Path) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if READY_LINE in log_path.read_text(errors="replace"):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def start_redis_server(sr: spec.SecureRedis, directory: Path, *,
                       material: Material | None = None,
                       pod_name: str | None = None) -> RedisServer:
    """Render every file for ``sr`` into ``directory`` and start redis-server on them.

    ``material`` defaults to a fresh ``material.ensure``; the servers of one
    Redis Cluster share theirs. In cluster mode the server also gets a free
    bus port, and ``pod_name`` replaces ``$(POD_NAME)`` in its arguments.
    """
    binary = shutil.which(sr.engine.server_binary)
    if binary is None:
        pytest.fail(f"{sr.engine.server_binary} is not on PATH; install Debian's redis-server "
                    "package (apt-get install redis-server) to run the redis tests")

    if material is None:
        material = material_module.ensure(sr, None, now=datetime.now(timezone.utc))
    secret_values(material)
    paths = Paths(
        tls_dir=str(directory / "tls"),
        acl_file=str(directory / "acl" / "users.acl"),
        private_conf=str(directory / "private" / "private.conf"),
        data_dir=str(directory / "data"),
    )
    write_private_file(Path(paths.cert_file), material.server.cert_pem)
    write_private_file(Path(paths.key_file), material.server.key_pem)
    write_private_file(Path(paths.ca_file), material.trusted_cas)
    write_private_file(Path(paths.acl_file), users_acl(sr, material))
    write_private_file(Path(paths.private_conf), private_conf(material))
    Path(paths.data_dir).mkdir(parents=True, exist_ok=True)

    client_files = {}
    for owner, credentials in (("user", material.users), ("system", material.system)):
        for name, credential in credentials.items():
            if credential.client_cert:
                files = TLSFiles(str(directory / "clients" / f"{owner}-{name}.crt"),
                                 str(directory / "clients" / f"{owner}-{name}.key"))
                write_private_file(Path(files.cert), credential.client_cert.cert_pem)
                write_private_file(Path(files.key), credential.client_cert.key_pem)
                client_files[name] = files

    conf_path = directory / "conf" / "redis.conf"
    log_path = directory / "redis.log"
    # A port found free can be taken before redis-server binds it, so retry on a new one.
    for _attempt in range(3):
        port = free_port()
        bus_port = free_port() if sr.mode == "cluster" else None
        if bus_port is None:
            write_private_file(conf_path, redis_conf(sr, paths, tls_port=port))
        else:
            write_private_file(conf_path, redis_conf(sr, paths, tls_port=port, bus_port=bus_port))
        argv = [binary] + local_server_args(sr, conf_path, pod_name)
        with log_path.open("wb") as log:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, cwd=directory,
                                       preexec_fn=_die_with_parent)
        server = RedisServer(sr, material, directory, paths, port, argv, log_path, process,
                             client_files, bus_port=bus_port)
        if _wait_until_ready(process, log_path):
            return server
        server.stop()
        if "Address already in use" not in server.log_text():
            break
    log = server.redact(server.log_text())
    pytest.fail(f"redis-server did not report {READY_LINE!r} within {START_TIMEOUT_SECONDS}s "
                f"(exit code {process.returncode}); its log:\n{log}")
