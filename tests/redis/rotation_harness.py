"""A primary and a replica that rotate credentials under load, driven as the operator drives pods.

- ``Deployment`` runs two redis-servers on 127.0.0.1 from the rendered
  files. Both read the same TLS files, users.acl and private.conf, as pods
  mounting the same Secrets and ConfigMap do, and each has its own data
  directory and redis.conf (for its port). The replica starts with
  ``--replicaof``; masteruser, masterauth and ``tls-replication yes`` come
  from the rendered files.
- ``Operator`` runs one reconcile in the order reconcile.py uses:
  plan, apply, converge, advance, apply. "Apply" does what the API server
  and the kubelet would: it saves the material as JSON (the operator's state
  Secrets), rewrites the mounted files and publishes the client Secrets. The
  operator keeps nothing in memory between reconciles, so a new ``Operator``
  is a restarted one. ``crash`` stops a reconcile part-way.
- ``Publisher`` contains what clients read from their Secrets: the newest
  published password, client certificate and CA bundle of every user.
- ``Workload`` runs clients in threads: long-lived connections opened before
  a rotation (never reconnected), a loop that opens a new connection with
  whatever is published at that moment, and a sampler of the replica's
  ``master_link_status``. The clients speak RESP over ``ssl`` sockets with
  no client library, so no library can hide a failure with a retry or a
  reconnect.

Passwords and private keys never appear in the reports: ``ClientSecret``
leaves the password out of its repr, failures record only server error
replies and exception types, and every secret of every material is
registered for the redaction in conftest.py.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from cryptography import x509

from secureredis import material as material_module
from secureredis import pki, redisconf, rotation, servers, spec
from secureredis.material import Material
from secureredis.redisconf import Paths

from redis_harness import (
    LOOPBACK, Secret, _die_with_parent, _wait_until_ready, free_port, local_server_args,
    remember_secrets, resp_command, secret_values, secure_redis_object,
)

GRACE_PERIOD = timedelta(minutes=30)
# The fake clock starts this far behind the real one. Certificates are issued
# at the fake time, and TLS checks their dates against the real time, so a
# clock moved through several grace periods must still be in the past.
CLOCK_LEAD = timedelta(hours=6)
APP_USER = "app_service"
CLIENT_TIMEOUT_SECONDS = 5.0
LINK_WAIT_SECONDS = 15.0
# Keys the replica's clients read: written once on the primary before a
# workload starts, so every GET on the replica has a known value.
FIXED_KEYS = 64
MAX_FAILURE_MESSAGES = 50
# Where an interrupted reconcile stops:
# - before-save: after plan, before anything is saved or applied;
# - after-apply: after plan's material is saved and applied, before converge;
# - first-endpoint: after converging only the first server and advancing on
#   that partial observation (as a reconcile does while a pod is not
#   running), with the result saved, before the other server is converged.
CRASH_POINTS = ("before-save", "after-apply", "first-endpoint")

log = logging.getLogger("rotation-harness")


def replication_object(name: str = "rotating") -> dict:
    """Return a SecureRedis in replication mode (a primary and one replica) with a 30m grace period."""
    obj = secure_redis_object(name, mode="replication", replicas=2)
    obj["spec"]["acl"]["rotation"] = {"gracePeriod": f"{int(GRACE_PERIOD.total_seconds())}s"}
    return obj


def digest(text: str) -> str:
    """Return the SHA-256 of ``text``, for comparing secrets without showing them."""
    return hashlib.sha256(text.encode()).hexdigest()


def replace_file(path: Path, text: str) -> None:
    """Write a 0600 file by renaming a complete copy over it, as the kubelet swaps a volume."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(partial, path)


def remember_material_secrets(generated: Material) -> None:
    """Register every secret of ``generated`` for redaction, rotation state included.

    ``secret_values`` covers published passwords and the current keys, and a
    rotation also keeps pending passwords, the next CA's key and the
    previous CA's key.
    """
    secret_values(generated)
    extra = []
    for owner, credentials in (("user", generated.users), ("system user", generated.system)):
        for name, credential in credentials.items():
            for index, password in enumerate(credential.pending):
                extra.append(Secret(f"pending password {index} of {owner} {name}", password))
    if generated.next_ca:
        extra.append(Secret("private key of the next CA", generated.next_ca.key_pem))
    previous = rotation.previous_ca(generated)
    if previous:
        extra.append(Secret("private key of the previous CA", previous.key_pem))
    remember_secrets(extra)


class FakeClock:
    """The time the operator's code is given; tests move it instead of waiting."""

    def __init__(self, start: datetime):
        self.now = start

    def advance(self, delta: timedelta) -> None:
        self.now += delta


# Clients


class ReplyError(Exception):
    """An error reply from the server, such as WRONGPASS or NOPERM."""


def client_context(ca_file: str, cert_file: str, key_file: str) -> ssl.SSLContext:
    """Build a client context that checks the server's chain and name and presents a certificate."""
    context = ssl.create_default_context(cafile=ca_file)
    context.load_cert_chain(cert_file, key_file)
    return context


class RespConnection:
    """One TLS connection speaking RESP2; it never reconnects on its own."""

    def __init__(self, endpoint: servers.Endpoint, context: ssl.SSLContext,
                 timeout: float = CLIENT_TIMEOUT_SECONDS):
        raw = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
        try:
            self.sock = context.wrap_socket(raw, server_hostname=endpoint.server_hostname)
        except BaseException:
            raw.close()
            raise
        self.reader = self.sock.makefile("rb")

    def call(self, *args: str) -> Any:
        """Send one command and return its reply; raise ReplyError for an error reply."""
        self.sock.sendall(resp_command(*args))
        return self._read_reply()

    def _read_reply(self) -> Any:
        line = self.reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("the server closed the connection")
        kind, body = line[:1], line[1:-2]
        if kind == b"+":
            return body.decode()
        if kind == b"-":
            raise ReplyError(body.decode())
        if kind == b":":
            return int(body)
        if kind == b"$":
            length = int(body)
            if length < 0:
                return None
            return self.reader.read(length + 2)[:-2].decode()
        if kind == b"*":
            length = int(body)
            return None if length < 0 else [self._read_reply() for _ in range(length)]
        raise ConnectionError(f"unexpected RESP reply type {kind!r}")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def parse_info(text: str) -> dict[str, str]:
    """Turn an INFO reply into a dict of its ``field:value`` lines."""
    fields = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            fields[key] = value
    return fields


@dataclass(frozen=True)
class ClientSecret:
    """The content of one user's Secret as a client reads it: credentials and mounted files.

    ``version`` grows each time the Secret's content changes.
    """

    name: str
    version: int
    username: str
    password: str = field(repr=False)
    ca_file: str
    cert_file: str
    key_file: str

    def context(self) -> ssl.SSLContext:
        return client_context(self.ca_file, self.cert_file, self.key_file)

    def connect(self, endpoint: servers.Endpoint,
                context: ssl.SSLContext | None = None) -> RespConnection:
        """Open a connection with this Secret's certificate and log in with its password."""
        connection = RespConnection(endpoint, context or self.context())
        try:
            reply = connection.call("AUTH", self.username, self.password)
            if reply != "OK":
                raise ReplyError(f"AUTH returned {reply!r}")
        except BaseException:
            connection.close()
            raise
        return connection


class Publisher:
    """The client-facing Secrets: one ``ClientSecret`` per application user and system role.

    System roles without a client certificate of their own get the server
    certificate, which is what the pods' probe presents.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self._lock = threading.Lock()
        self._current: dict[str, ClientSecret] = {}
        self._content: dict[str, tuple[str, ...]] = {}
        self._contexts: dict[tuple[str, int], ssl.SSLContext] = {}

    def publish(self, generated: Material) -> None:
        entries = {name: c for name, c in generated.users.items()}
        entries.update({role: c for role, c in generated.system.items()})
        for name, credential in sorted(entries.items()):
            cert = credential.client_cert or generated.server
            content = (credential.username, credential.password, generated.trusted_cas,
                       cert.cert_pem, cert.key_pem)
            if self._content.get(name) == content:
                continue
            previous = self._current.get(name)
            version = previous.version + 1 if previous else 1
            folder = self.directory / name / str(version)
            replace_file(folder / "ca.crt", generated.trusted_cas)
            replace_file(folder / "tls.crt", cert.cert_pem)
            replace_file(folder / "tls.key", cert.key_pem)
            secret = ClientSecret(name, version, credential.username, credential.password,
                                  str(folder / "ca.crt"), str(folder / "tls.crt"),
                                  str(folder / "tls.key"))
            with self._lock:
                self._content[name] = content
                self._current[name] = secret

    def current(self, name: str) -> ClientSecret:
        with self._lock:
            return self._current[name]

    def context(self, secret: ClientSecret) -> ssl.SSLContext:
        """Return the TLS context for one version of a Secret, built once, as a client reloading it would."""
        key = (secret.name, secret.version)
        with self._lock:
            context = self._contexts.get(key)
        if context is None:
            context = secret.context()
            with self._lock:
                self._contexts[key] = context
        return context

    def connect(self, name: str, endpoint: servers.Endpoint) -> tuple[RespConnection, int]:
        """Log in as ``name`` with what is published now; return the connection and the Secret's version."""
        secret = self.current(name)
        return secret.connect(endpoint, self.context(secret)), secret.version


# Servers


@dataclass
class ServerProcess:
    """One redis-server of the deployment; it keeps its port across restarts.

    Each start logs to a new file, ``redis-<n>.log``, so a restart waits for
    its own ready line.
    """

    name: str
    directory: Path
    paths: Paths
    port: int = 0
    argv: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None
    starts: int = 0

    def __repr__(self) -> str:
        return f"<ServerProcess {self.name} on {LOOPBACK}:{self.port}>"

    @property
    def endpoint(self) -> servers.Endpoint:
        return servers.Endpoint(name=self.name, host=LOOPBACK, port=self.port,
                                server_hostname=LOOPBACK)

    @property
    def log_path(self) -> Path:
        return self.directory / f"redis-{self.starts}.log"

    def start(self) -> bool:
        """Start the server and return True once it accepts connections."""
        self.starts += 1
        with self.log_path.open("wb") as output:
            self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=output,
                                            stderr=subprocess.STDOUT,
                                            cwd=self.paths.data_dir,
                                            preexec_fn=_die_with_parent)
        return _wait_until_ready(self.process, self.log_path)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


class Deployment:
    """A primary and a replica on 127.0.0.1 that share their mounted files.

    ``paths`` are the shared files; converge reads only their TLS paths, and
    each server has its own data directory.
    """

    def __init__(self, sr: spec.SecureRedis, directory: Path):
        self.sr = sr
        self.directory = directory
        binary = shutil.which(sr.engine.server_binary)
        if binary is None:
            raise RuntimeError(f"{sr.engine.server_binary} is not on PATH; install Debian's "
                               "redis-server package (apt-get install redis-server)")
        self.binary = binary
        shared = directory / "mounted"
        self.paths = Paths(tls_dir=str(shared / "tls"), acl_file=str(shared / "acl" / "users.acl"),
                           private_conf=str(shared / "private" / "private.conf"))
        self.primary = self._server("primary")
        self.replica = self._server("replica")

    def _server(self, name: str) -> ServerProcess:
        folder = self.directory / name
        paths = Paths(tls_dir=self.paths.tls_dir, acl_file=self.paths.acl_file,
                      private_conf=self.paths.private_conf, data_dir=str(folder / "data"))
        Path(paths.data_dir).mkdir(parents=True, exist_ok=True)
        return ServerProcess(name, folder, paths)

    def _configure(self, server: ServerProcess) -> None:
        """Give ``server`` a free port and write its redis.conf and arguments for it."""
        server.port = free_port()
        conf_path = server.directory / "redis.conf"
        replace_file(conf_path, redisconf.redis_conf(self.sr, server.paths, tls_port=server.port))
        # A test-only timing knob: the primary starts a full sync at once
        # instead of waiting 5 s for more replicas to join.
        server.argv = [self.binary] + local_server_args(self.sr, conf_path) + [
            "--repl-diskless-sync-delay", "0"]
        if server is self.replica:
            server.argv += ["--replicaof", LOOPBACK, str(self.primary.port)]

    @property
    def servers(self) -> list[ServerProcess]:
        return [self.primary, self.replica]

    @property
    def endpoints(self) -> list[servers.Endpoint]:
        """The servers as the operator sees them, the primary first (it picks pods[0] to lead)."""
        return [server.endpoint for server in self.servers]

    def write_files(self, generated: Material) -> None:
        """Rewrite what the pods mount: the TLS Secret, the ACL ConfigMap and private.conf."""
        tls_dir = Path(self.paths.tls_dir)
        replace_file(tls_dir / "tls.crt", generated.server.cert_pem)
        replace_file(tls_dir / "tls.key", generated.server.key_pem)
        replace_file(tls_dir / "ca.crt", generated.trusted_cas)
        replace_file(Path(self.paths.acl_file), redisconf.users_acl(self.sr, generated))
        replace_file(Path(self.paths.private_conf), redisconf.private_conf(generated))

    def start(self, publisher: Publisher) -> None:
        """Start the primary, then the replica, and wait until the replica has synced."""
        for server in self.servers:
            if not self._start_on_free_port(server):
                raise RuntimeError(f"redis-server {server.name} did not start; see "
                                   f"{server.log_path}")
        if not wait_for_link(self.replica.endpoint, publisher, up=True):
            raise RuntimeError(f"the replica did not sync with the primary within "
                               f"{LINK_WAIT_SECONDS}s; see {self.replica.log_path}")

    def _start_on_free_port(self, server: ServerProcess) -> bool:
        # A port found free can be taken before redis-server binds it, so a
        # start that fails on it is tried again with another port.
        for _attempt in range(3):
            self._configure(server)
            if server.start():
                return True
            server.stop()
            if "Address already in use" not in server.log_path.read_text(errors="replace"):
                return False
        return False

    def restart_replica(self, publisher: Publisher) -> bool:
        """Kill the replica, start it again on the current files and return True once it syncs."""
        self.replica.stop()
        return self.replica.start() and wait_for_link(self.replica.endpoint, publisher, up=True)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


# Checks over fresh connections


def operator_call(endpoint: servers.Endpoint, publisher: Publisher, *args: str) -> Any:
    """Run one command on a new connection as the operator user, with its published Secret."""
    connection = publisher.current("operator").connect(endpoint)
    try:
        return connection.call(*args)
    finally:
        connection.close()


def replication_info(endpoint: servers.Endpoint, publisher: Publisher) -> dict[str, str]:
    return parse_info(operator_call(endpoint, publisher, "INFO", "replication"))


def sync_counters(endpoint: servers.Endpoint, publisher: Publisher) -> dict[str, str]:
    """Return how many full and partial syncs the primary has served, from INFO stats.

    The counters grow each time a replica links again, so equal counters
    before and after a rotation show the link never dropped.
    """
    stats = parse_info(operator_call(endpoint, publisher, "INFO", "stats"))
    return {key: stats[key] for key in ("sync_full", "sync_partial_ok", "sync_partial_err")}


def wait_for_link(replica: servers.Endpoint, publisher: Publisher, *, up: bool,
                  timeout: float = LINK_WAIT_SECONDS) -> bool:
    """Return True once the replica reports its link to the primary as up (or down)."""
    wanted = "up" if up else "down"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if replication_info(replica, publisher).get("master_link_status") == wanted:
                return True
        except (OSError, ReplyError):
            pass
        time.sleep(0.05)
    return False


def authenticates(endpoint: servers.Endpoint, tls: ClientSecret, login: ClientSecret,
                  context: ssl.SSLContext | None = None) -> bool:
    """Return True if AUTH with ``login``'s user and password succeeds over ``tls``'s certificate.

    ``context`` is ``tls``'s context when the caller has it built already. A
    rejected password returns False. A failed TLS connection raises, so it is
    never mistaken for a rejected password.
    """
    connection = RespConnection(endpoint, context or tls.context())
    try:
        return connection.call("AUTH", login.username, login.password) == "OK"
    except ReplyError as error:
        if str(error).startswith("WRONGPASS"):
            return False
        raise
    finally:
        connection.close()


def config_digest(endpoint: servers.Endpoint, publisher: Publisher, config_command: str,
                  parameter: str) -> str:
    """Return the SHA-256 of a setting, read with CONFIG GET under its renamed name.

    A digest, so settings such as ``masterauth`` can be compared without
    being shown.
    """
    reply = operator_call(endpoint, publisher, config_command, "GET", parameter)
    values = dict(zip(reply[::2], reply[1::2]))
    return digest(values.get(parameter, ""))


def served_serial(endpoint: servers.Endpoint, tls: ClientSecret) -> str:
    """Return the serial (hex) of the certificate a fresh TLS handshake receives."""
    connection = RespConnection(endpoint, tls.context())
    try:
        der = connection.sock.getpeercert(binary_form=True)
    finally:
        connection.close()
    return pki.serial_hex(x509.load_der_x509_certificate(der).serial_number)


def client_certificate_accepted(endpoint: servers.Endpoint, ca_file: str, cert_file: str,
                                key_file: str) -> bool:
    """Return True if the server keeps a connection that presents this client certificate.

    Over TLS 1.3 the server rejects a client certificate after the handshake,
    so a PING is sent: any reply (PONG or NOAUTH) means accepted, a closed
    connection or a TLS alert means rejected.
    """
    try:
        connection = RespConnection(endpoint, client_context(ca_file, cert_file, key_file))
    except ssl.SSLCertVerificationError:
        raise
    except (ssl.SSLError, ConnectionResetError):
        return False
    try:
        connection.call("PING")
        return True
    except ReplyError:
        return True
    except (ssl.SSLError, ConnectionError):
        return False
    finally:
        connection.close()


# The operator


class RotationStalled(Exception):
    """A rotation that did not finish within the reconcile budget."""


@dataclass
class ReconcileOutcome:
    steps: list[rotation.Step]
    convergence: rotation.Convergence | None
    crashed: bool


class Operator:
    """The operator's reconcile for servers that are not pods, with the state saved as JSON.

    ``on_saved`` gets every material right after it is saved. ``after_apply``
    runs after every apply, which is where the workload gets time to use
    what was just published; its time does not count in ``busy_seconds``.
    """

    def __init__(self, deployment: Deployment, publisher: Publisher, clock: FakeClock,
                 state_file: Path, *, after_apply: Callable[[], None] | None = None):
        self.deployment = deployment
        self.sr = deployment.sr
        self.publisher = publisher
        self.clock = clock
        self.state_file = state_file
        self.after_apply = after_apply
        self.on_saved: Callable[[Material], None] | None = None
        self.busy_seconds = 0.0

    def load(self) -> Material | None:
        if not self.state_file.exists():
            return None
        return material_module.from_json(self.state_file.read_text())

    def bootstrap(self) -> Material:
        """Create the first material and apply it, as the first reconcile does before any pod runs."""
        generated = material_module.ensure(self.sr, None, now=self.clock.now)
        generated, _ = rotation.plan(self.sr, generated, annotations={}, now=self.clock.now)
        self._apply(generated)
        return generated

    def _apply(self, generated: Material) -> None:
        remember_material_secrets(generated)
        replace_file(self.state_file, material_module.to_json(generated))
        if self.on_saved:
            self.on_saved(generated)
        self.deployment.write_files(generated)
        self.publisher.publish(generated)

    def _apply_and_wait(self, generated: Material, started: float) -> float:
        """Apply, let ``after_apply`` run, and return the new start of the busy time."""
        self._apply(generated)
        self.busy_seconds += time.perf_counter() - started
        if self.after_apply:
            self.after_apply()
        return time.perf_counter()

    def reconcile(self, annotations: Mapping[str, str], *,
                  crash: str | None = None) -> ReconcileOutcome:
        """Run one reconcile; with ``crash``, stop at that point of CRASH_POINTS."""
        if crash is not None and crash not in CRASH_POINTS:
            raise ValueError(f"unknown crash point {crash!r}; use one of {CRASH_POINTS}")
        started = time.perf_counter()
        now = self.clock.now
        generated = material_module.ensure(self.sr, self.load(), now=now)
        generated, steps = rotation.plan(self.sr, generated, annotations=annotations, now=now)
        report_steps(steps)
        if crash == "before-save":
            self.busy_seconds += time.perf_counter() - started
            return ReconcileOutcome(steps, None, crashed=True)

        started = self._apply_and_wait(generated, started)
        if crash == "after-apply":
            return ReconcileOutcome(steps, None, crashed=True)

        endpoints = self.deployment.endpoints
        if crash == "first-endpoint":
            endpoints = endpoints[:1]
        observation = servers.converge(None, None, self.sr, generated, endpoints, now=now,
                                       logger=log, paths=self.deployment.paths)
        advanced, more = rotation.advance(self.sr, generated, observation.convergence, now=now)
        report_steps(more)
        self._apply_and_wait(advanced, started)
        return ReconcileOutcome(steps + more, observation.convergence,
                                crashed=crash is not None)


def report_steps(steps: list[rotation.Step]) -> None:
    for step in steps:
        log.info("rotation step kind=%s phase=%s: %s", step.kind, step.phase, step.message)


def saved_state(state_file: Path, kind: str) -> dict[str, Any]:
    return rotation.state(material_module.from_json(state_file.read_text()), kind)


@dataclass
class RotationReport:
    """How one rotation went. ``busy_seconds`` is the time spent in reconciles, without
    the time the workload was given after each apply."""

    kind: str
    phases: list[str] = field(default_factory=list)
    reconciles: int = 0
    crashes: int = 0
    clock_moves: int = 0
    busy_seconds: float = 0.0
    wall_seconds: float = 0.0


def rotate(new_operator: Callable[[], Operator], kind: str, *, request: str,
           crash: bool = False, after_reconcile: Callable[[], None] | None = None,
           on_phase: Callable[[str], None] | None = None,
           max_reconciles: int = 20) -> RotationReport:
    """Request a rotation of ``kind`` and reconcile until it is Idle again.

    Every reconcile gets a new Operator from ``new_operator``, so nothing
    survives in memory between them. With ``crash``, each full reconcile is
    preceded by three that stop at each point of CRASH_POINTS in turn, so
    every phase is interrupted at every point. When a full reconcile leaves
    the saved rotation state unchanged, the rotation waits for time, and the
    clock moves past the grace period.
    ``on_phase`` gets each saved phase change, and ``after_reconcile`` runs
    after every reconcile, interrupted ones too.
    """
    annotations = {rotation.ANNOTATIONS[kind]: request}
    report = RotationReport(kind)
    started = time.perf_counter()

    def record_phase(generated: Material) -> None:
        phase = rotation.state(generated, kind)["phase"]
        if report.phases[-1:] == [phase] or (not report.phases and phase == rotation.IDLE):
            return
        report.phases.append(phase)
        if on_phase:
            on_phase(phase)

    def run(crash_point: str | None) -> Operator:
        operator = new_operator()
        operator.on_saved = record_phase
        operator.reconcile(annotations, crash=crash_point)
        report.busy_seconds += operator.busy_seconds
        if after_reconcile:
            after_reconcile()
        return operator

    for _ in range(max_reconciles):
        state_file = new_operator().state_file
        before = saved_state(state_file, kind)
        for crash_point in CRASH_POINTS if crash else ():
            run(crash_point)
            report.crashes += 1
        operator = run(None)
        report.reconciles += 1

        after = saved_state(state_file, kind)
        if report.phases and after["phase"] == rotation.IDLE:
            break
        if after == before:
            operator.clock.advance(GRACE_PERIOD + timedelta(minutes=1))
            report.clock_moves += 1
    else:
        phase = saved_state(state_file, kind)["phase"]
        raise RotationStalled(f"the {kind} rotation is still in phase {phase} after "
                              f"{max_reconciles} reconciles")

    report.wall_seconds = time.perf_counter() - started
    return report


# The workload


def set_and_get(connection: RespConnection, key: str, value: str) -> int:
    """Run SET and then GET on ``key``, check both replies and return the operation count."""
    if connection.call("SET", key, value) != "OK":
        raise ReplyError("SET did not return OK")
    if connection.call("GET", key) != value:
        raise ReplyError("GET returned another value than the one just set")
    return 2


def get_fixed(connection: RespConnection, sequence: int) -> int:
    """GET one of the seeded keys, check the value and return the operation count."""
    index = sequence % FIXED_KEYS
    if connection.call("GET", f"app:fixed:{index}") != f"fixed-{index}":
        raise ReplyError(f"GET app:fixed:{index} returned another value than the seeded one")
    return 1


@dataclass
class ThreadCounters:
    """Counts of one workload thread, written only by that thread."""

    ops: int = 0
    by_phase: dict[str, int] = field(default_factory=dict)


class Workload:
    """Clients that run SET/GET as the application user until stopped, or until their bounds.

    ``failures`` lists what failed, with server error replies and exception
    types only; after MAX_FAILURE_MESSAGES only ``failure_count`` grows. A
    long-lived connection that fails is not used again, so it counts as lost.
    """

    def __init__(self, deployment: Deployment, publisher: Publisher, *, user: str = APP_USER,
                 primary_connections: int = 4, replica_connections: int = 2,
                 max_ops: int = 1_000_000, max_seconds: float = 150.0,
                 link_interval: float = 0.005):
        self.deployment = deployment
        self.publisher = publisher
        self.user = user
        self.primary_connections = primary_connections
        self.replica_connections = replica_connections
        self.max_ops = max_ops
        self.max_seconds = max_seconds
        self.link_interval = link_interval
        self.phase = "before"
        self.failures: list[str] = []
        self.failure_count = 0
        # New connections that logged in and ran their commands, by the
        # version of the Secret they used.
        self.new_connections: dict[int, int] = {}
        self.connections = 0
        self.link_samples = 0
        self.link_down_samples = 0
        self.survivors = 0
        self._long_lived: list[tuple[str, RespConnection, int | None]] = []
        self._lost: set[int] = set()
        self._counters: list[ThreadCounters] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._failure_lock = threading.Lock()
        self._deadline = 0.0

    @property
    def ops(self) -> int:
        return sum(counter.ops for counter in self._counters)

    @property
    def long_lived(self) -> int:
        return len(self._long_lived)

    def ops_by_phase(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for counter in self._counters:
            for phase, count in counter.by_phase.items():
                totals[phase] = totals.get(phase, 0) + count
        return totals

    def __enter__(self) -> Workload:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _fail(self, where: str, error: BaseException | str) -> None:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        with self._failure_lock:
            self.failure_count += 1
            if len(self.failures) < MAX_FAILURE_MESSAGES:
                self.failures.append(f"{where} during {self.phase}: {text}")

    def _count(self, counter: ThreadCounters, ops: int) -> None:
        counter.ops += ops
        counter.by_phase[self.phase] = counter.by_phase.get(self.phase, 0) + ops

    def _running(self) -> bool:
        return (not self._stop.is_set() and time.monotonic() < self._deadline
                and self.ops < self.max_ops)

    def start(self) -> None:
        """Seed the replica's keys, open every long-lived connection, then start the threads."""
        primary, replica = self.deployment.primary.endpoint, self.deployment.replica.endpoint
        seed, _ = self.publisher.connect(self.user, primary)
        try:
            for index in range(FIXED_KEYS):
                seed.call("SET", f"app:fixed:{index}", f"fixed-{index}")
            seed.call("SET", "app:fixed:done", "1")
        finally:
            seed.close()
        if not self._wait_for_replica_key(replica):
            raise RuntimeError("the replica did not receive the seeded keys")

        self._deadline = time.monotonic() + self.max_seconds
        for index in range(self.primary_connections):
            name = f"primary-{index}"
            self._open_long_lived(name, primary, lambda connection, sequence, name=name:
                                  set_and_get(connection, f"app:{name}:{sequence % 128}",
                                              f"{name}-{sequence}"))
        for index in range(self.replica_connections):
            self._open_long_lived(f"replica-{index}", replica, get_fixed)
        # The operator user may not run CLIENT ID, so the sampler has no client ID.
        sampler, _ = self.publisher.connect("operator", replica)
        self._long_lived.append(("link-sampler", sampler, None))
        self._spawn("link-sampler", self._link_loop, len(self._long_lived) - 1, sampler)
        self._spawn("new-connections", self._new_connection_loop)

    def _wait_for_replica_key(self, replica: servers.Endpoint) -> bool:
        deadline = time.monotonic() + LINK_WAIT_SECONDS
        while time.monotonic() < deadline:
            connection, _ = self.publisher.connect(self.user, replica)
            try:
                if connection.call("GET", "app:fixed:done") == "1":
                    return True
            finally:
                connection.close()
            time.sleep(0.02)
        return False

    def _open_long_lived(self, name: str, endpoint: servers.Endpoint,
                         operation: Callable[[RespConnection, int], int]) -> None:
        connection, _ = self.publisher.connect(self.user, endpoint)
        client_id = connection.call("CLIENT", "ID")
        self._long_lived.append((name, connection, client_id))
        self._spawn(name, self._long_lived_loop, len(self._long_lived) - 1, connection, operation)

    def _spawn(self, name: str, target, *args) -> None:
        counter = ThreadCounters()
        self._counters.append(counter)
        thread = threading.Thread(target=target, args=(counter, *args), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _long_lived_loop(self, counter: ThreadCounters, slot: int, connection: RespConnection,
                         operation: Callable[[RespConnection, int], int]) -> None:
        name = self._long_lived[slot][0]
        sequence = 0
        while self._running():
            try:
                ops = operation(connection, sequence)
            except Exception as error:  # every failure is counted, whatever its type
                self._fail(name, error)
                self._lost.add(slot)
                return
            self._count(counter, ops)
            sequence += 1

    def _new_connection_loop(self, counter: ThreadCounters) -> None:
        primary, replica = self.deployment.primary.endpoint, self.deployment.replica.endpoint
        sequence = 0
        while self._running():
            to_primary = sequence % 2 == 0
            target = primary if to_primary else replica
            try:
                connection, version = self.publisher.connect(self.user, target)
            except Exception as error:  # every failure is counted, whatever its type
                self._fail(f"new connection to {target.name}", error)
                sequence += 1
                continue
            try:
                if to_primary:
                    ops = set_and_get(connection, f"app:new:{sequence % 1024}", f"new-{sequence}")
                else:
                    ops = get_fixed(connection, sequence)
            except Exception as error:  # every failure is counted, whatever its type
                self._fail(f"command on a new connection to {target.name}", error)
            else:
                self._count(counter, ops)
                self.new_connections[version] = self.new_connections.get(version, 0) + 1
                self.connections += 1
            finally:
                connection.close()
            sequence += 1

    def _link_loop(self, counter: ThreadCounters, slot: int, connection: RespConnection) -> None:
        while self._running():
            try:
                info = parse_info(connection.call("INFO", "replication"))
            except Exception as error:  # every failure is counted, whatever its type
                self._fail("link sampler", error)
                self._lost.add(slot)
                return
            self.link_samples += 1
            if info.get("master_link_status") != "up":
                self.link_down_samples += 1
                self._fail("link sampler", "the replica reported master_link_status "
                           f"{info.get('master_link_status')!r}")
            time.sleep(self.link_interval)

    def wait_for(self, *, ops: int = 0, new_connections: int = 0,
                 timeout: float = 60.0) -> bool:
        """Wait for ``ops`` more operations and ``new_connections`` more new connections.

        Returns False if the workload stopped, an operation failed, or
        ``timeout`` seconds passed first: a failing workload may never reach
        the counts.
        """
        want_ops = self.ops + ops
        want_connections = self.connections + new_connections
        deadline = time.monotonic() + timeout
        while self.ops < want_ops or self.connections < want_connections:
            if not self._running() or self.failure_count or time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self) -> None:
        """Stop the threads, then check that each long-lived connection is still the same client."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2 * CLIENT_TIMEOUT_SECONDS)
        survivors = 0
        for slot, (name, connection, client_id) in enumerate(self._long_lived):
            try:
                if slot not in self._lost and _same_client(connection, client_id):
                    survivors += 1
            except Exception as error:  # every failure is counted, whatever its type
                self._fail(name, error)
            finally:
                connection.close()
        self.survivors = survivors


def _same_client(connection: RespConnection, client_id: int | None) -> bool:
    """Return True if the connection still answers, as the client it was when opened."""
    if client_id is None:
        return connection.call("PING") == "PONG"
    return connection.call("CLIENT", "ID") == client_id


# Everything together


class Rig:
    """A running deployment with its operator state, its client Secrets and a fake clock."""

    def __init__(self, directory: Path, obj: dict | None = None):
        self.sr = spec.load(obj or replication_object())
        self.clock = FakeClock(datetime.now(timezone.utc).replace(microsecond=0) - CLOCK_LEAD)
        self.publisher = Publisher(directory / "secrets")
        self.deployment = Deployment(self.sr, directory)
        self.state_file = directory / "operator-state.json"

    def operator(self, *, after_apply: Callable[[], None] | None = None) -> Operator:
        """Return a freshly started operator that knows only what was saved."""
        return Operator(self.deployment, self.publisher, self.clock, self.state_file,
                        after_apply=after_apply)

    def start(self) -> None:
        """Create the material, start both servers and reconcile once with no rotation due."""
        self.operator().bootstrap()
        self.deployment.start(self.publisher)
        outcome = self.operator().reconcile({})
        if outcome.convergence is None or not all(vars(outcome.convergence).values()):
            raise RuntimeError(f"the first reconcile did not converge: {outcome.convergence}")

    def stop(self) -> None:
        self.deployment.stop()

    def material(self) -> Material:
        return material_module.from_json(self.state_file.read_text())

    @property
    def client_names(self) -> list[str]:
        """Every application user and system role, as named in ``Publisher``."""
        generated = self.material()
        return sorted(generated.users) + sorted(generated.system)

    def rejected_logins(self) -> list[str]:
        """Return "<user> on <server>" for each user whose published Secret a server rejects."""
        rejected = []
        for endpoint in self.deployment.endpoints:
            for name in self.client_names:
                secret = self.publisher.current(name)
                if not authenticates(endpoint, secret, secret, self.publisher.context(secret)):
                    rejected.append(f"{name} on {endpoint.name}")
        return rejected

    def rotate_under_load(self, kind: str, workload: Workload, *, request: str,
                          crash: bool = False, min_ops: int = 0, pause_ops: int = 2_000,
                          pause_connections: int = 20,
                          after_reconcile: Callable[[], None] | None = None) -> RotationReport:
        """Rotate ``kind`` while ``workload`` runs, giving it time after every apply.

        Each pause lasts until the workload has done ``pause_ops`` more
        operations and ``pause_connections`` more new connections, so every
        phase sees traffic. After the rotation the workload runs until it has
        done ``min_ops`` in all.
        """
        def pause() -> None:
            workload.wait_for(ops=pause_ops, new_connections=pause_connections)

        def label(phase: str) -> None:
            workload.phase = f"{kind}:{phase}"

        pause()
        report = rotate(lambda: self.operator(after_apply=pause), kind, request=request,
                        crash=crash, after_reconcile=after_reconcile, on_phase=label)
        workload.phase = "after"
        pause()
        workload.wait_for(ops=max(0, min_ops - workload.ops))
        return report
