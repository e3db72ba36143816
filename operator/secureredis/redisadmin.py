"""The only module that connects to Redis: verified TLS connections and facts for the checks.

Design decisions:

- ``connect`` always verifies the certificate chain, and the host name unless
  the caller opts out. The trust store is only the CA it is given, so a
  certificate from any other CA is rejected. When ``server_hostname`` is
  given, the TCP connection goes to ``host`` (a pod IP, say) while the
  certificate is checked against ``server_hostname``, which is also sent as
  SNI. redis-py has no option for that: it passes its ``host`` to
  ``wrap_socket``. ``_TLSConnection`` overrides only that step.
- The SSL context is built once per client from files or PEM text. Python's
  ``ssl`` loads a client certificate only from a file, so PEM text goes
  through an anonymous in-memory file (``memfd_create``) and never touches
  a disk. That also works under a read-only root filesystem.
- The client speaks RESP2 (``protocol=2``). The handshake is then a single
  ``AUTH``, where RESP3 would need ``HELLO``, which redis-py 8 sends by
  default and a user without ``+hello`` cannot run. ``CLIENT SETINFO`` is
  switched off, because a user without ``+client|setinfo`` gets it denied on
  Redis 7.2 and later, and each denial adds an ACL LOG entry.
- One connection per client (``single_connection_client``), made at once,
  so a connection, TLS or authentication failure surfaces in ``connect``
  and the facts describe the TLS session they were read over. Such a client
  is not thread-safe. No retries: the reconcile loop retries on its own
  schedule.
- ``gather_facts`` never runs a command that changes data or settings. It
  learns whether a command exists from COMMAND INFO and what a user may run
  from ACL DRYRUN. CONFIG GET goes through the renamed name when the caller
  knows it. It never reads ``requirepass`` or ``masterauth``, whose values
  are passwords.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import tempfile
from typing import Any, Iterable, Mapping

import redis
from redis.backoff import NoBackoff
from redis.connection import ConnectionPool, SSLConnection
from redis.retry import Retry

from . import checks, pki, topology

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 5.0
# Request that the client-certificate probe sends after its handshake. A
# TLS 1.3 server that requires a certificate rejects the client only after
# the handshake, so the probe has to send something and read the reply.
PROBE_REQUEST = b"PING\r\n"
# The filler argument of ACL DRYRUN calls. Redis may take it as a key name,
# and a key denial still shows that the command itself is allowed.
DRYRUN_FILLER = "x"


class RedisAdminError(Exception):
    """A connection or command failure whose message names what failed and what to do."""


class _TLSConnection(SSLConnection):
    """An SSLConnection that uses a prepared SSLContext and checks a chosen server name.

    redis-py 8 wraps the socket with ``server_hostname=self.host``, which
    makes the certificate's name equal the address connected to. This class
    replaces only ``_wrap_socket_with_ssl``. The context decides about
    verification, so redis-py's own ``ssl_*`` settings and OCSP options are
    unused here.
    """

    def __init__(self, *, tls_context: ssl.SSLContext, probe_context: ssl.SSLContext,
                 server_hostname: str | None = None, has_client_certificate: bool = False,
                 **kwargs: Any):
        self.tls_context = tls_context
        self.probe_context = probe_context
        self.server_hostname = server_hostname
        self.has_client_certificate = has_client_certificate
        self.tls_version: str | None = None
        super().__init__(**kwargs)

    @property
    def verified_name(self) -> str:
        return self.server_hostname or self.host

    def _wrap_socket_with_ssl(self, sock: socket.socket) -> ssl.SSLSocket:
        sock.settimeout(self.socket_connect_timeout)
        tls_socket = self.tls_context.wrap_socket(sock, server_hostname=self.verified_name)
        tls_socket.settimeout(self.socket_timeout)
        self.tls_version = tls_socket.version()
        return tls_socket


def _write_private_file(text: str) -> tuple[int, str]:
    """Return an open descriptor and a path of a private file holding ``text``.

    Linux gets an anonymous memory file, and other systems a 0600 temporary
    file that the caller removes with the descriptor.
    """
    data = text.encode()
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("secure-redis-tls", os.MFD_CLOEXEC)
        path = f"/proc/self/fd/{fd}"
    else:
        fd, path = tempfile.mkstemp(prefix="secure-redis-tls-")
    written = 0
    while written < len(data):
        written += os.write(fd, data[written:])
    return fd, path


def _load_client_certificate(context: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    fd, path = _write_private_file(cert_pem.rstrip("\n") + "\n" + key_pem)
    try:
        context.load_cert_chain(path)
    finally:
        os.close(fd)
        if not path.startswith("/proc/"):
            os.unlink(path)


def tls_context(*, ca_pem: str | None = None, ca_file: str | None = None,
                cert_file: str | None = None, key_file: str | None = None,
                cert_pem: str | None = None, key_pem: str | None = None,
                check_hostname: bool = True) -> ssl.SSLContext:
    """Build a TLS 1.2+ client context that verifies the chain against the given CA.

    With neither ``ca_pem`` nor ``ca_file``, the system's default CAs are
    trusted. A client certificate comes from files or from PEM text.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    if ca_pem or ca_file:
        context.load_verify_locations(cafile=ca_file, cadata=ca_pem)
    else:
        context.load_default_certs()

    if cert_file or key_file:
        context.load_cert_chain(cert_file, key_file)
    elif cert_pem and key_pem:
        _load_client_certificate(context, cert_pem, key_pem)
    return context


def connect(host: str, port: int, *, tls: bool = True, ca_pem: str | None = None,
            ca_file: str | None = None, cert_file: str | None = None,
            key_file: str | None = None, cert_pem: str | None = None,
            key_pem: str | None = None, username: str | None = None,
            password: str | None = None, server_hostname: str | None = None,
            check_hostname: bool = True,
            timeout: float = DEFAULT_TIMEOUT_SECONDS) -> redis.Redis:
    """Connect, authenticate when credentials are given, and return a single-connection client.

    The redis-py client decodes replies to ``str``. ``tls=False`` opens a plain TCP
    connection, which exists so the audit can examine a server without TLS.
    Raises RedisAdminError when the connection, the TLS handshake or the
    authentication fails. The caller closes the client.
    """
    if username and password is None:
        raise RedisAdminError(f"no password given for user {username!r}; provide one or "
                              "connect as the default user")
    if bool(cert_file) != bool(key_file) or bool(cert_pem) != bool(key_pem):
        raise RedisAdminError("a client certificate needs its private key; give both or "
                              "neither")

    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "username": username,
        "password": password,
        "protocol": 2,
        "driver_info": None,
        "decode_responses": True,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    if tls:
        try:
            options["tls_context"] = tls_context(
                ca_pem=ca_pem, ca_file=ca_file, cert_file=cert_file, key_file=key_file,
                cert_pem=cert_pem, key_pem=key_pem, check_hostname=check_hostname)
            options["probe_context"] = tls_context(ca_pem=ca_pem, ca_file=ca_file,
                                                   check_hostname=check_hostname)
        except (OSError, ssl.SSLError) as error:
            raise RedisAdminError(f"cannot load the TLS files: {error}; check that the CA, "
                                  "certificate and key are PEM files and that the key matches "
                                  "the certificate") from error
        options["server_hostname"] = server_hostname
        options["has_client_certificate"] = bool(cert_file or cert_pem)
        pool = ConnectionPool(connection_class=_TLSConnection, **options)
    else:
        pool = ConnectionPool(**options)

    try:
        client = redis.Redis(connection_pool=pool, single_connection_client=True)
    except redis.AuthenticationError as error:
        pool.disconnect()
        user = username or "default"
        raise RedisAdminError(f"authentication as {user} failed at {host}:{port}: {error}; "
                              "check the user name and password") from error
    except redis.RedisError as error:
        pool.disconnect()
        raise RedisAdminError(_connection_failure(
            host, port, tls, server_hostname, bool(cert_file or cert_pem), error)) from error
    client.auto_close_connection_pool = True
    log.debug("connected to redis host=%s port=%s tls=%s user=%s", host, port, tls,
              username or "default")
    return client


def _connection_failure(host: str, port: int, tls: bool, server_hostname: str | None,
                        has_client_certificate: bool, error: Exception) -> str:
    """Explain a failed connection from the OSError that redis-py chains as the cause."""
    cause = error.__cause__ or error.__context__
    where = f"{host}:{port}"
    if isinstance(cause, ssl.SSLCertVerificationError):
        name = server_hostname or host
        return (f"the TLS certificate of {where} failed verification: "
                f"{cause.verify_message}; pass the CA that issued it, and make sure the "
                f"certificate names {name!r} (or connect with a name it has)")
    if isinstance(cause, ssl.SSLError) and not has_client_certificate:
        # Redis 7.0 over TLS 1.3 closes the session after the handshake
        # without an alert when a required client certificate is missing.
        return (f"the TLS session with {where} failed ({cause.reason or cause}), most likely "
                "because the server requires a client certificate; pass a certificate and "
                "key issued by the server's CA")
    if isinstance(cause, ssl.SSLError):
        return (f"the TLS handshake with {where} failed: {cause.reason or cause}; check that "
                "the port serves TLS and that a client certificate is given if the server "
                "requires one")
    if isinstance(cause, ConnectionRefusedError):
        hint = "TLS" if tls else "plain TCP"
        return f"connection to {where} was refused; check the host and that the port serves {hint}"
    if isinstance(error, redis.TimeoutError) or isinstance(cause, socket.timeout):
        return (f"connecting to {where} timed out; check the address and that no firewall "
                "drops the traffic")
    if isinstance(error, redis.ResponseError):
        return f"the server at {where} rejected the connection set-up: {error}"
    return (f"connection to {where} failed: {error}; check the address, and whether the port "
            f"expects {'TLS' if tls else 'plain TCP'}")


def _client_certificate_required(connection: _TLSConnection) -> bool | None:
    """Return whether the server rejects a TLS client that presents no certificate.

    Returns None when the probe fails for another reason. In TLS 1.2 the
    handshake itself fails. In TLS 1.3 the server rejects the client after
    the handshake, so the probe sends a PING and reads the reply. A PING
    without AUTH gets PONG or NOAUTH and changes nothing.
    """
    if not connection.has_client_certificate:
        # The main connection succeeded without a certificate.
        return False
    try:
        with socket.create_connection((connection.host, connection.port),
                                      timeout=connection.socket_connect_timeout) as raw:
            with connection.probe_context.wrap_socket(
                    raw, server_hostname=connection.verified_name) as probe:
                probe.sendall(PROBE_REQUEST)
                reply = probe.recv(64)
    except ssl.SSLCertVerificationError:
        return None
    except ssl.SSLError as error:
        log.debug("client certificate probe rejected host=%s port=%s reason=%s",
                  connection.host, connection.port, error.reason)
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except OSError as error:
        log.warning("client certificate probe failed host=%s port=%s error=%s",
                    connection.host, connection.port, error)
        return None
    if not reply:
        return True
    return False if reply[:1] in (b"+", b"-") else None


def _pairs(reply: Any) -> dict[str, str]:
    """Turn a CONFIG GET reply (a flat list in RESP2, or a dict) into a dict."""
    if isinstance(reply, Mapping):
        return {str(k): str(v) for k, v in reply.items()}
    items = list(reply or ())
    return {str(k): str(v) for k, v in zip(items[::2], items[1::2])}


def _config_name(renames: Mapping[str, str]) -> str | None:
    name = renames.get("config")
    if name == "":
        return None
    return name or "CONFIG"


def _read_config(client: redis.Redis, renames: Mapping[str, str],
                 notes: list[str]) -> dict[str, str] | None:
    """Read CONFIG_PARAMETERS one at a time, as CONFIG GET before Redis 7.0 requires."""
    name = _config_name(renames)
    if name is None:
        notes.append("CONFIG is disabled")
        return None
    pipe = client.pipeline(transaction=False)
    for parameter in checks.CONFIG_PARAMETERS:
        pipe.execute_command(name, "GET", parameter)
    replies = pipe.execute(raise_on_error=False)

    config: dict[str, str] = {}
    for reply in replies:
        if isinstance(reply, redis.ResponseError):
            if "unknown command" in str(reply).lower():
                notes.append("CONFIG is renamed or disabled; give its new name")
            else:
                notes.append(f"CONFIG GET failed: {reply}")
            return None
        config.update(_pairs(reply))
    return config


def _read_info(client: redis.Redis, notes: list[str]) -> dict[str, str] | None:
    info: dict[str, str] = {}
    for section in ("server", "memory"):
        try:
            reply = client.info(section)
        except redis.ResponseError as error:
            notes.append(f"INFO failed: {error}")
            return None
        info.update({k: str(v) for k, v in reply.items() if k in checks.INFO_FIELDS})
    return info


def _command_info(client: redis.Redis, names: list[str]) -> list[Any] | None:
    """Return the COMMAND INFO entries for ``names`` in order (None where not found)."""
    if not names:
        return []
    try:
        return list(client.execute_command("COMMAND INFO", *names))
    except redis.ResponseError:
        return None


def _call_name(command: str, renames: Mapping[str, str]) -> str | None:
    """Return the name to send for an original command name, or None if it is disabled."""
    base, _, sub = command.partition("|")
    name = renames.get(base, base)
    if name == "":
        return None
    return f"{name}|{sub}" if sub else name


def _dryrun_arguments(call_name: str, arity: int | None) -> list[str]:
    """Return the words after ``ACL DRYRUN <user>`` that satisfy the command's arity.

    Redis 7.0 checks arity in ACL DRYRUN, so fillers pad the call: a
    positive arity is an exact word count and a negative one a minimum,
    both counting the command name (and subcommand).
    """
    words = call_name.split("|")
    if arity is not None:
        while len(words) < abs(arity):
            words.append(DRYRUN_FILLER)
    return words


def _verdict(reply: Any) -> str:
    if isinstance(reply, redis.ResponseError):
        return checks.MISSING if "not found" in str(reply).lower() else checks.ERROR
    text = str(reply)
    if text == "OK":
        return checks.ALLOWED
    if "permissions to run" in text:
        return checks.DENIED
    if "permissions to access" in text:
        # The command passed, and only the filler key or channel was denied.
        return checks.ALLOWED
    return checks.ERROR


def _dangerous_verdicts(client: redis.Redis, users: Iterable[str], dangerous: list[str],
                        renames: Mapping[str, str], command_info_permitted: bool,
                        notes: list[str]) -> dict[str, dict[str, str]] | None:
    """Run ACL DRYRUN for every enabled user and dangerous command in one pipeline.

    COMMAND INFO supplies each command's arity. Without it, commands that
    take arguments get the verdict ERROR.
    """
    call_names = {command: _call_name(command, renames) for command in dangerous}
    reachable = [command for command, name in call_names.items() if name is not None]
    entries = None
    if command_info_permitted:
        entries = _command_info(client, [call_names[c] for c in reachable])
    if entries is None:
        entries = [None] * len(reachable)
    arity = {command: (entry[1] if entry else None) for command, entry in zip(reachable, entries)}

    users = list(users)
    pipe = client.pipeline(transaction=False)
    for user in users:
        for command in reachable:
            pipe.execute_command("ACL DRYRUN", user,
                                 *_dryrun_arguments(call_names[command], arity[command]))
    replies = iter(pipe.execute(raise_on_error=False))

    verdicts: dict[str, dict[str, str]] = {}
    for user in users:
        verdicts[user] = {command: checks.MISSING for command in dangerous}
        for command in reachable:
            verdicts[user][command] = _verdict(next(replies))
        errors = [v for v in verdicts[user].values() if v == checks.ERROR]
        if reachable and len(errors) == len(reachable):
            notes.append("ACL DRYRUN failed for every command; the user may lack +acl|dryrun")
            return None
    return verdicts


def gather_facts(client: redis.Redis,
                 renames: Mapping[str, str] | None = None) -> checks.RedisFacts:
    """Read every fact the checklist needs from a server, running only read-only commands.

    ``renames`` maps a lowercase command to its new name ("" if disabled),
    as in rename-command. Facts that a missing permission or an unknown
    rename hides are None, with a note saying why. Raises RedisAdminError
    when the connection fails.
    """
    renames = {command.lower(): name for command, name in (renames or {}).items()}
    notes: list[str] = []
    try:
        return _gather(client, renames, notes)
    except (redis.ConnectionError, redis.TimeoutError) as error:
        raise RedisAdminError(f"lost the connection while reading facts: {error}; "
                              "retry, and check the server's log") from error


def _own_rules(client: redis.Redis, users: list[checks.AclUser] | None) -> checks.AclUser | None:
    """Return the ACL LIST entry of the connected user, or None if it is not known."""
    if users is None:
        return None
    try:
        me = client.acl_whoami()
    except redis.ResponseError:
        return None
    return next((user for user in users if user.name == me), None)


def _permitted(me: checks.AclUser | None, command: str, notes: list[str]) -> bool:
    """Return False if the connected user's rules deny ``command``, and note the grant it needs.

    Skipping a denied command keeps the audit out of ACL LOG. When the rules
    cannot tell, the command is tried.
    """
    if me is None or checks.user_may_run(me, command) is not False:
        return True
    notes.append(f"user {me.name} may not run {command.replace('|', ' ').upper()} "
                 f"(grant +{command})")
    return False


def _gather(client: redis.Redis, renames: Mapping[str, str],
            notes: list[str]) -> checks.RedisFacts:
    # Only a client from connect() has one connection whose TLS session
    # can be examined; for a pooled client the TLS facts stay unknown.
    connection = client.connection
    tls = tls_version = hostname_verified = certificate_required = None
    if connection is not None:
        tls = isinstance(connection, _TLSConnection)
    if isinstance(connection, _TLSConnection):
        tls_version = connection.tls_version
        hostname_verified = connection.tls_context.check_hostname
        certificate_required = _client_certificate_required(connection)

    try:
        acl_list: tuple[str, ...] | None = tuple(client.acl_list())
    except redis.ResponseError as error:
        notes.append(f"ACL LIST failed: {error}")
        acl_list = None
    users = checks.acl_users(checks.RedisFacts(acl_list=acl_list))
    me = _own_rules(client, users)

    config = _read_config(client, renames, notes) if _permitted(me, "config|get", notes) else None
    info = _read_info(client, notes) if _permitted(me, "info", notes) else None

    present = None
    command_info_permitted = _permitted(me, "command|info", notes)
    if command_info_permitted:
        entries = _command_info(client, list(checks.CHECKLIST_COMMANDS))
        if entries is None:
            notes.append("COMMAND INFO failed")
        else:
            present = {command: entry is not None
                       for command, entry in zip(checks.CHECKLIST_COMMANDS, entries)}

    dangerous: tuple[str, ...] | None = None
    if _permitted(me, "acl|cat", notes):
        try:
            dangerous = tuple(client.acl_cat("dangerous"))
        except redis.ResponseError as error:
            notes.append(f"ACL CAT failed: {error}")

    verdicts = None
    dryrun_permitted = _permitted(me, "acl|dryrun", notes)
    if dangerous and users is not None and dryrun_permitted:
        enabled = [user.name for user in users if user.enabled]
        verdicts = _dangerous_verdicts(client, enabled, list(dangerous), renames,
                                       command_info_permitted, notes)

    host = client.get_connection_kwargs().get("host")
    for note in notes:
        log.info("redis fact unavailable host=%s note=%s", host, note)
    return checks.RedisFacts(
        config=config,
        info=info,
        acl_list=acl_list,
        dangerous_commands=dangerous,
        dangerous_verdicts=verdicts,
        original_names_present=present,
        tls=tls,
        tls_version=tls_version,
        hostname_verified=hostname_verified,
        client_certificate_required=certificate_required,
        notes=tuple(notes),
    )


def role(client: redis.Redis) -> tuple[str, str | None]:
    """Return the server's replication role and, for a replica, its primary's host."""
    try:
        reply = client.execute_command("ROLE")
    except redis.RedisError as error:
        raise RedisAdminError(f"ROLE failed: {error}") from error
    kind = reply[0]
    if kind == "slave":
        return "replica", reply[1]
    if kind == "master":
        return "primary", None
    return kind, None


def replicate(client: redis.Redis, primary_host: str, port: int) -> None:
    """Make the server a replica of ``primary_host`` (masteruser and masterauth come from its config)."""
    try:
        client.execute_command("REPLICAOF", primary_host, str(port))
    except redis.RedisError as error:
        raise RedisAdminError(f"REPLICAOF {primary_host} {port} failed: {error}") from error


def promote(client: redis.Redis) -> None:
    """Turn a replica into a primary that keeps its data."""
    try:
        client.execute_command("REPLICAOF", "NO", "ONE")
    except redis.RedisError as error:
        raise RedisAdminError(f"REPLICAOF NO ONE failed: {error}") from error


def replication_info(client: redis.Redis) -> dict[str, str]:
    """Return the fields of INFO replication, such as ``master_link_status``."""
    try:
        return {key: str(value) for key, value in client.info("replication").items()}
    except redis.RedisError as error:
        raise RedisAdminError(f"INFO replication failed: {error}") from error


def acl_log(client: redis.Redis, count: int = 128) -> list[dict[str, Any]]:
    """Return the newest ACL LOG entries as dicts (username, reason, object, count, ...)."""
    try:
        entries = client.execute_command("ACL", "LOG", str(count))
    except redis.RedisError as error:
        raise RedisAdminError(f"ACL LOG failed: {error}") from error
    return [entry if isinstance(entry, dict) else _pairs(entry) for entry in entries or []]


def sync_acl_user(client: redis.Redis, line: str) -> bool:
    """Apply one users.acl line with ACL SETUSER and check the result with ACL GETUSER.

    The line starts from an empty user (``resetpass``, ``resetkeys``, ...), so
    one atomic SETUSER makes the live user equal to the file's, passwords
    included, without disconnecting its clients. Passwords travel only as
    ``#<sha256>`` hashes. Returns True when GETUSER shows exactly the line's
    password hashes and on/off flag.
    """
    tokens = line.split(" ")
    if tokens[0] != "user" or len(tokens) < 3:
        raise RedisAdminError("an ACL line must start with 'user <name>'")
    name, rules = tokens[1], tokens[2:]
    try:
        client.execute_command("ACL", "SETUSER", name, *rules)
        user = client.execute_command("ACL", "GETUSER", name)
    except redis.RedisError as error:
        raise RedisAdminError(f"ACL SETUSER {name} failed: {error}") from error

    # A RESP2 reply is a flat [field, value, ...] list; values may be lists.
    if isinstance(user, Mapping):
        fields = dict(user)
    else:
        items = list(user or ())
        fields = {str(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}
    want_hashes = {t[1:] for t in rules if t.startswith("#")}
    have_hashes = set(fields.get("passwords") or [])
    want_on = "on" in rules
    have_on = "on" in (fields.get("flags") or [])
    return want_hashes == have_hashes and want_on == have_on


def disable_unknown_users(client: redis.Redis, known: set[str]) -> list[str]:
    """Switch off, and strip the passwords of, live users that are in no users.acl line.

    The operator user cannot delete users (ACL DELUSER would also cut their
    connections); a user that is off with no password cannot log in again.
    """
    try:
        live = client.execute_command("ACL", "USERS")
    except redis.RedisError as error:
        raise RedisAdminError(f"ACL USERS failed: {error}") from error
    removed = []
    for name in live:
        if name in known:
            continue
        try:
            client.execute_command("ACL", "SETUSER", name, "off", "resetpass", "resetkeys",
                                   "resetchannels", "nocommands")
        except redis.RedisError as error:
            raise RedisAdminError(f"disabling unknown user {name} failed: {error}") from error
        removed.append(name)
    return removed


def config_set(client: redis.Redis, config_command: str, settings: Mapping[str, str]) -> None:
    """Run one CONFIG SET (under its renamed name) for all ``settings`` at once.

    Never pass secrets in an error message: only the setting names are shown.
    """
    arguments: list[str] = []
    for key, value in settings.items():
        arguments += [key, value]
    try:
        client.execute_command(config_command, "SET", *arguments)
    except redis.RedisError as error:
        raise RedisAdminError(f"CONFIG SET {', '.join(settings)} failed: {error}") from error


def reload_tls(client: redis.Redis, config_command: str, *, cert_file: str, key_file: str,
               ca_file: str) -> None:
    """Make the server re-read its certificate, key and CA files (Redis >= 7.0.1).

    Redis re-reads the files even when the paths are unchanged; a bad pair is
    rejected and the old certificate stays. Open connections are untouched.
    """
    config_set(client, config_command, {"tls-cert-file": cert_file, "tls-key-file": key_file,
                                        "tls-ca-cert-file": ca_file})


def tls_handshake(host: str, port: int, *, server_hostname: str, ca_pem: str,
                  cert_pem: str | None = None, key_pem: str | None = None,
                  timeout: float = DEFAULT_TIMEOUT_SECONDS) -> tuple[str | None, bool]:
    """Return the serial (hex) of the certificate the server presents and whether it
    accepted the client certificate given.

    In TLS 1.3 a server rejects a client certificate only after the handshake,
    so an unauthenticated PING is sent: any RESP reply (NOAUTH) means accepted,
    a closed connection means rejected.
    """
    from cryptography import x509

    context = tls_context(ca_pem=ca_pem, cert_pem=cert_pem, key_pem=key_pem)
    serial = None
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=server_hostname) as conn:
                der = conn.getpeercert(binary_form=True)
                if der:
                    serial = pki.serial_hex(x509.load_der_x509_certificate(der).serial_number)
                conn.sendall(PROBE_REQUEST)
                reply = conn.recv(64)
    except ssl.SSLCertVerificationError as error:
        raise RedisAdminError(f"the certificate of {server_hostname} at {host}:{port} failed "
                              f"verification: {error.verify_message}") from error
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return serial, False
    except OSError as error:
        raise RedisAdminError(f"TLS connection to {host}:{port} failed: {error}") from error
    return serial, bool(reply) and reply[:1] in (b"+", b"-")


# --- Redis Cluster ---------------------------------------------------------
#
# Every function runs as the operator user on one node and raises
# RedisAdminError naming that node. ``apply_step`` runs one step that
# topology.next_step chose; the reconcile loop reads the cluster again
# before it requests the next one.

# Keys per MIGRATE call, and the idle time (not the total) MIGRATE allows
# the target before it replies. Both are estimates for small values: a large value
# needs a longer timeout, and a slow target may need a smaller batch.
KEYS_PER_MIGRATE = 100
MIGRATE_TIMEOUT_MS = 5000


def _node_name(client: redis.Redis) -> str:
    """Return the node behind ``client`` for messages: the verified host name, else the address."""
    kwargs = client.get_connection_kwargs()
    return f"{kwargs.get('server_hostname') or kwargs.get('host')}:{kwargs.get('port')}"


def _cluster(client: redis.Redis, *arguments: Any) -> Any:
    try:
        return client.execute_command("CLUSTER", *arguments)
    except redis.RedisError as error:
        command = " ".join(str(argument) for argument in arguments)
        raise RedisAdminError(f"CLUSTER {command} failed on {_node_name(client)}: "
                              f"{error}") from error


def _pipeline(client: redis.Redis, commands: list[tuple[Any, ...]], what: str) -> list[Any]:
    """Send ``commands`` in one round trip; raises on the first error with the failing command."""
    if not commands:
        return []
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    try:
        replies = pipe.execute(raise_on_error=False)
    except redis.RedisError as error:
        raise RedisAdminError(f"{what} failed on {_node_name(client)}: {error}") from error
    for command, reply in zip(commands, replies):
        if isinstance(reply, redis.ResponseError):
            shown = " ".join(str(part) for part in command)
            raise RedisAdminError(f"{what} failed on {_node_name(client)} at {shown}: {reply}")
    return replies


def cluster_nodes(client: redis.Redis) -> tuple[topology.ClusterNode, ...]:
    """Return the node table of the server behind ``client`` (``CLUSTER NODES``)."""
    text = _cluster(client, "NODES")
    try:
        return topology.parse_cluster_nodes(text)
    except ValueError as error:
        raise RedisAdminError(f"CLUSTER NODES from {_node_name(client)} is not readable: "
                              f"{error}") from error


def cluster_myself(client: redis.Redis) -> topology.ClusterNode:
    """Return the server's own line of ``CLUSTER NODES``."""
    for node in cluster_nodes(client):
        if node.myself:
            return node
    raise RedisAdminError(f"CLUSTER NODES from {_node_name(client)} has no line flagged "
                          "myself; is cluster-enabled set?")


def cluster_info(client: redis.Redis) -> dict[str, str]:
    """Return ``CLUSTER INFO`` as a dict, such as ``{"cluster_state": "ok", ...}``."""
    text = _cluster(client, "INFO")
    info = {}
    for line in str(text).splitlines():
        key, separator, value = line.partition(":")
        if separator:
            info[key.strip()] = value.strip()
    return info


def observe_pod(client: redis.Redis | None, ordinal: int, address: str, port: int,
                bus_port: int) -> topology.PodView:
    """Read one pod's node table and cluster_state for topology.next_step.

    A pod without a client, or whose reads fail, counts as unreachable.
    """
    nodes = state = None
    if client is not None:
        try:
            nodes = cluster_nodes(client)
            state = cluster_info(client).get("cluster_state")
        except RedisAdminError as error:
            log.info("cluster state unreadable ordinal=%s error=%s", ordinal, error)
            nodes = None
    return topology.PodView(ordinal, address, port, bus_port, nodes, state)


def set_config_epoch(client: redis.Redis, epoch: int) -> None:
    """Give a node that knows no other node its first config epoch."""
    _cluster(client, "SET-CONFIG-EPOCH", epoch)


def add_slots(client: redis.Redis, ranges: Iterable[topology.SlotRange]) -> None:
    """Assign slot ranges that no node owns to the server (Redis 7.0+ ADDSLOTSRANGE)."""
    arguments: list[int] = []
    for slot_range in ranges:
        arguments += [slot_range.start, slot_range.end]
    _cluster(client, "ADDSLOTSRANGE", *arguments)


def meet(client: redis.Redis, address: str, port: int, bus_port: int) -> None:
    """Start a handshake from the server to the node at ``address`` (an IP, not a name).

    OK only means the handshake started: a node whose certificate the
    server's CA did not issue stays in the handshake state and is dropped
    after the node timeout.
    """
    _cluster(client, "MEET", address, port, bus_port)


def cluster_replicate(client: redis.Redis, primary_id: str) -> None:
    """Make the server a replica of the node ``primary_id`` (it must know that node)."""
    _cluster(client, "REPLICATE", primary_id)


def forget(client: redis.Redis, node_id: str) -> None:
    """Remove ``node_id`` from the server's node table and ignore gossip about it for 60 s."""
    _cluster(client, "FORGET", node_id)


def cluster_reset(client: redis.Redis) -> None:
    """Make the server forget every node and take a new id (``CLUSTER RESET HARD``).

    Redis rejects this on a primary that contains keys. A replica drops its
    copy of the data.
    """
    _cluster(client, "RESET", "HARD")


def move_slots(source: redis.Redis, target: redis.Redis, *, source_id: str, target_id: str,
               target_address: str, target_port: int, slots: Iterable[topology.SlotRange],
               username: str, password: str, keys_per_migrate: int = KEYS_PER_MIGRATE,
               timeout_ms: int = MIGRATE_TIMEOUT_MS) -> int:
    """Move ``slots`` and their keys from ``source`` to ``target``; returns the keys moved.

    The sequence is the one Redis documents for resharding. First the target
    marks each slot IMPORTING and the source marks it MIGRATING. Then MIGRATE
    sends the keys over TLS: the source connects to ``target_address``, logs
    in as ``username`` with AUTH2 and runs RESTORE-ASKING there. Last the
    target, and after it the source, assign the slot to the target.

    Each part is skipped where the servers show it done, so a move that
    stopped halfway can be run again. MIGRATE uses REPLACE because a key
    that was copied before an interruption is still on the source, and that
    copy is the current one.
    """
    source_me = cluster_myself(source)
    target_me = cluster_myself(target)
    for client, me, expected in ((source, source_me, source_id), (target, target_me, target_id)):
        if me.id != expected:
            raise RedisAdminError(f"{_node_name(client)} is node {me.id}, not {expected}; read "
                                  "the cluster again before moving slots")

    wanted = sorted(topology.to_slots(slots))
    source_owned = topology.to_slots(source_me.slots)
    target_owned = topology.to_slots(target_me.slots)
    _pipeline(target, [("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id) for slot in wanted
                       if slot not in target_owned and target_me.importing.get(slot) != source_id],
              "marking slots as importing")
    _pipeline(source, [("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id) for slot in wanted
                       if slot in source_owned and source_me.migrating.get(slot) != target_id],
              "marking slots as migrating")

    moved = 0
    pending = wanted
    while pending:
        listed = _pipeline(source, [("CLUSTER", "GETKEYSINSLOT", slot, keys_per_migrate)
                                    for slot in pending], "listing the keys of moving slots")
        with_keys = [(slot, list(keys)) for slot, keys in zip(pending, listed) if keys]
        for slot, keys in with_keys:
            _migrate(source, target_address, target_port, slot, keys, username, password,
                     timeout_ms)
            moved += len(keys)
        # A full batch may leave keys behind, so those slots are listed again.
        pending = [slot for slot, _keys in with_keys]

    _pipeline(target, [("CLUSTER", "SETSLOT", slot, "NODE", target_id) for slot in wanted],
              "assigning slots to the target")
    try:
        _pipeline(source, [("CLUSTER", "SETSLOT", slot, "NODE", target_id) for slot in wanted],
                  "assigning slots to the target")
    except RedisAdminError:
        # A source that gave away its last slots may already have heard of
        # the target's claim and, as Redis 7.0+ does with
        # cluster-allow-replica-migration yes, turned into the target's
        # replica, which rejects SETSLOT. Its slots are then where they belong.
        if cluster_myself(source).is_primary:
            raise
        log.info("source became a replica of the target source=%s target=%s", source_id,
                 target_id)
    log.info("moved slots source=%s target=%s slots=%s keys=%s", source_id, target_id,
             topology.format_ranges(topology.to_ranges(wanted)), moved)
    return moved


def _migrate(source: redis.Redis, address: str, port: int, slot: int, keys: list[str],
             username: str, password: str, timeout_ms: int) -> None:
    # The password is an argument of MIGRATE, so no message here shows the
    # command. Redis 7.0.15 shows it as "(redacted)" in SLOWLOG.
    try:
        source.execute_command("MIGRATE", address, port, "", 0, timeout_ms, "REPLACE",
                               "AUTH2", username, password, "KEYS", *keys)
    except redis.RedisError as error:
        raise RedisAdminError(f"MIGRATE of {len(keys)} keys of slot {slot} from "
                              f"{_node_name(source)} to {address}:{port} failed: {error}; check "
                              "that the target accepts the operator user") from error


def apply_step(step: topology.Step, clients: Mapping[int, redis.Redis], *, username: str,
               password: str) -> None:
    """Run one step from topology.next_step with the operator's clients, keyed by pod ordinal.

    ``username`` and ``password`` are the operator user's. The source of a
    MIGRATE logs in to the target with them. Wait and Blocked do nothing.
    """
    def client(ordinal: int) -> redis.Redis:
        if ordinal not in clients:
            raise RedisAdminError(f"no connection to pod {ordinal} for step: {step}")
        return clients[ordinal]

    log.debug("cluster step %s", step)
    if isinstance(step, topology.SetConfigEpoch):
        set_config_epoch(client(step.ordinal), step.epoch)
    elif isinstance(step, topology.AddSlots):
        add_slots(client(step.ordinal), step.slots)
    elif isinstance(step, topology.Meet):
        meet(client(step.ordinal), step.address, step.port, step.bus_port)
    elif isinstance(step, topology.Replicate):
        cluster_replicate(client(step.ordinal), step.primary_id)
    elif isinstance(step, topology.MoveSlots):
        move_slots(client(step.source), client(step.target), source_id=step.source_id,
                   target_id=step.target_id, target_address=step.target_address,
                   target_port=step.target_port, slots=step.slots, username=username,
                   password=password)
    elif isinstance(step, topology.Forget):
        for ordinal in step.ordinals:
            forget(client(ordinal), step.node_id)
    elif isinstance(step, topology.Reset):
        cluster_reset(client(step.ordinal))
    elif not isinstance(step, (topology.Wait, topology.Blocked)):
        raise TypeError(f"unknown cluster step {step!r}")
