"""The Redis hardening checklist as pure checks over gathered facts.

Each of the twelve checklist items is one function that takes what is known
about a deployment and returns a ``CheckResult`` with the outcome ``pass``,
``fail`` or ``unknown``. ``run_checks`` calls them in the checklist's order.
The operator's status and ``secure-redis audit`` both call it, so the two
can never disagree about what "hardened" means.

Facts come in three parts, and any of the first two may be missing:

- ``RedisFacts``: what one live server reports (CONFIG values, ACL LIST,
  ACL DRYRUN verdicts, COMMAND INFO lookups, the TLS session). Only
  ``redisadmin`` talks to Redis and builds it; the audit has nothing else.
- ``KubeFacts``: findings from the live Kubernetes objects (NetworkPolicy,
  Services, the pod template's securityContext), built here by
  ``kube_facts`` from plain object dicts. The operator has only these while
  its pods are down.
- ``Known``: what the caller knows for certain: which users are admins or
  the operator's own, the passwords it manages and the renamed commands.

Design decisions:

- ``unknown`` means the facts cannot decide, and it never counts as failed.
  A check fails only on evidence. It passes only when every condition it
  covers was seen to hold, so a missing fact gives ``unknown``, not ``pass``.
- Checks read the live server, not the rendered files, because drift, a
  failed reload or a hand edit shows only on the server.
- Passwords appear only in ``Known.passwords``, which is left out of
  ``repr``. Checks compare their length and never format them.
- A user "can run" a command when ACL DRYRUN allows it or denies only a key
  or channel, because Redis checks the command before keys and channels.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from . import acl
from .credentials import MIN_PASSWORD_LENGTH

PASS = "pass"
FAIL = "fail"
UNKNOWN = "unknown"

# CONFIG GET parameters that redisadmin reads for the checks. A parameter the
# server does not have (such as enable-debug-command before Redis 7.0) is
# missing from RedisFacts.config.
CONFIG_PARAMETERS = (
    "bind", "protected-mode", "port", "tls-port", "tls-auth-clients", "tls-protocols",
    "tls-replication", "tls-cluster", "cluster-enabled", "maxmemory", "acllog-max-len",
    "enable-debug-command",
)
# INFO fields used when CONFIG cannot be run, for example because it is
# renamed to a name the caller does not know. INFO's tcp_port is no
# substitute for CONFIG's port: Redis 7.0 reports the TLS port there when
# the plaintext port is 0.
INFO_FIELDS = ("redis_version", "maxmemory")

# The commands the checklist wants renamed or disabled, lowercase.
CHECKLIST_COMMANDS = ("flushall", "flushdb", "config", "debug", "shutdown")

# ACL DRYRUN verdicts stored in RedisFacts.dangerous_verdicts.
ALLOWED = "allowed"
DENIED = "denied"
# The command is not found under the name that was tried: renamed to a name
# the caller did not know, or disabled.
MISSING = "missing"
ERROR = "error"

# Bind addresses that listen on every interface. An empty bind does too.
WILDCARD_ADDRESSES = ("*", "::*", "0.0.0.0", "::")
SECURE_TLS_VERSIONS = ("TLSv1.2", "TLSv1.3")
INSECURE_TLS_PROTOCOLS = ("TLSv1", "TLSv1.1")
EXPOSING_SERVICE_TYPES = ("NodePort", "LoadBalancer")
# Long lists in a message are cut to this many entries.
MAX_LISTED = 8


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one checklist item.

    ``reason`` is a CamelCase word for machines (like a Kubernetes condition
    reason), ``message`` describes what was seen, and ``fix`` describes how
    to make the check pass.
    """

    id: str
    title: str
    outcome: str
    reason: str
    message: str
    fix: str


@dataclass(frozen=True)
class RedisFacts:
    """Facts that one live server reports. A field is None when it could not be read.

    ``dangerous_verdicts`` maps each enabled user to the ACL DRYRUN verdict
    (ALLOWED, DENIED, MISSING or ERROR) for every command of
    ``dangerous_commands`` (the ``ACL CAT dangerous`` reply, original names
    such as ``config|get``). ``original_names_present`` maps each of
    CHECKLIST_COMMANDS to whether COMMAND INFO finds it under its original
    name. ``tls`` is True when the facts were read over TLS, and
    ``tls_version`` is that session's protocol. ``notes`` say why facts are
    missing.
    """

    config: Mapping[str, str] | None = None
    info: Mapping[str, str] | None = None
    acl_list: tuple[str, ...] | None = None
    dangerous_commands: tuple[str, ...] | None = None
    dangerous_verdicts: Mapping[str, Mapping[str, str]] | None = None
    original_names_present: Mapping[str, bool] | None = None
    tls: bool | None = None
    tls_version: str | None = None
    hostname_verified: bool | None = None
    client_certificate_required: bool | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class KubeFacts:
    """Findings from the live Kubernetes objects of one deployment, built by ``kube_facts``.

    Each tuple of strings lists problems found, as short descriptions that
    name the object; an empty tuple means none. A field is None when the
    object it needs was not given.
    """

    statefulset_found: bool
    network_policy_found: bool
    network_policy_selects_pods: bool | None
    network_policy_types: tuple[str, ...]
    open_ingress_rules: tuple[str, ...]
    exposed_services: tuple[str, ...]
    host_exposure: tuple[str, ...]
    root_containers: tuple[str, ...] | None


@dataclass(frozen=True)
class Known:
    """Facts about the deployment that the caller has for certain.

    ``system_users`` maps each of the operator's own users to its ACL rules,
    which grant it exactly the dangerous commands it needs. ``passwords``
    maps a user name to the passwords the caller manages for it. They are
    used only to check their length and are left out of ``repr``.
    ``renames`` maps a lowercase command to its new name, "" if disabled.
    """

    admin_users: frozenset[str] = frozenset()
    system_users: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    passwords: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    renames: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AclUser:
    """One ``ACL LIST`` line, reduced to what the checks need."""

    name: str
    enabled: bool
    nopass: bool
    password_count: int
    # Command rules (+x, -x, allcommands, nocommands) of the root selector,
    # then those of each extra selector.
    command_rules: tuple[str, ...]
    selectors: tuple[tuple[str, ...], ...]


def parse_acl_line(line: str) -> AclUser | None:
    """Parse one ``ACL LIST`` line, or return None when it is not a user line."""
    try:
        tokens = acl.split_tokens(line)
    except ValueError:
        return None
    if len(tokens) < 2 or tokens[0] != "user":
        return None

    enabled = nopass = False
    password_count = 0
    command_rules: list[str] = []
    selectors: list[tuple[str, ...]] = []
    for token in tokens[2:]:
        if token.startswith("("):
            selectors.append(tuple(t for t in token[1:-1].split() if _is_command_rule(t)))
        elif token == "on":
            enabled = True
        elif token == "off":
            enabled = False
        elif token == "nopass":
            nopass = True
        elif token.startswith("#"):
            password_count += 1
        elif _is_command_rule(token):
            command_rules.append(token)
    return AclUser(tokens[1], enabled, nopass, password_count, tuple(command_rules),
                   tuple(selectors))


def _is_command_rule(token: str) -> bool:
    return token[:1] in "+-" or token in ("allcommands", "nocommands")


def acl_users(facts: RedisFacts | None) -> list[AclUser] | None:
    """Return the users of ``facts.acl_list``, or None when ACL LIST was not read."""
    if facts is None or facts.acl_list is None:
        return None
    return [user for user in map(parse_acl_line, facts.acl_list) if user is not None]


def grants_every_command(rules: Sequence[str]) -> bool:
    """Return True if applying ``rules`` in order leaves every command allowed."""
    every = False
    for rule in rules:
        if rule in ("+@all", "allcommands"):
            every = True
        elif rule.startswith("-") or rule == "nocommands":
            every = False
    return every


def _rules_allow(rules: Sequence[str], command: str) -> bool | None:
    """Return whether ``rules`` allow ``command`` (``name`` or ``name|sub``), or None.

    None means a category other than @all decides, which needs the server's
    command table.
    """
    base = command.partition("|")[0]
    allowed: bool | None = False
    for rule in rules:
        if rule in ("+@all", "allcommands"):
            allowed = True
        elif rule in ("-@all", "nocommands"):
            allowed = False
        elif rule[1:2] == "@":
            allowed = None
        elif rule[1:].lower() in (base, command):
            allowed = rule[0] == "+"
    return allowed


def user_may_run(user: AclUser, command: str) -> bool | None:
    """Return whether ``user`` may run ``command`` by its own rules, or None if undecided.

    redisadmin calls this before it runs a command that the user may lack,
    so a denial does not add an entry to ACL LOG.
    """
    verdicts = [_rules_allow(user.command_rules, command)]
    verdicts += [_rules_allow(selector, command) for selector in user.selectors]
    if True in verdicts:
        return True
    return None if None in verdicts else False


def _result(check_id: str, outcome: str, reason: str, message: str, fix: str) -> CheckResult:
    return CheckResult(check_id, TITLES[check_id], outcome, reason, message, fix)


def _listed(items: Iterable[str]) -> str:
    items = sorted(items)
    shown = ", ".join(items[:MAX_LISTED])
    if len(items) > MAX_LISTED:
        shown += f" and {len(items) - MAX_LISTED} more"
    return shown


def _setting(redis: RedisFacts | None, name: str) -> str | None:
    """Return a CONFIG value, or the INFO field of the same meaning when CONFIG was not read."""
    if redis is None:
        return None
    if redis.config is not None and name in redis.config:
        return redis.config[name]
    if name in INFO_FIELDS and redis.info is not None and name in redis.info:
        return str(redis.info[name])
    return None


def _missing(redis: RedisFacts | None, what: str) -> str:
    if redis is None:
        return f"No facts from a live Redis server, so {what} cannot be read."
    notes = f" ({'; '.join(redis.notes)})" if redis.notes else ""
    return f"Could not read {what} from the server{notes}."


def _bind_addresses(bind: str) -> list[str]:
    # A leading '-' marks an address Redis may skip when it is unavailable.
    return [address.lstrip("-") for address in bind.split()]


# 1. bind
def check_bind(redis: RedisFacts | None, kube: KubeFacts | None, known: Known) -> CheckResult:
    fix = ("List specific addresses in bind, such as the pod IP and 127.0.0.1 (SecureRedis "
           "does this), never * or 0.0.0.0.")
    bind = _setting(redis, "bind")
    if bind is None:
        return _result("bind-not-wildcard", UNKNOWN, "FactsUnavailable",
                       _missing(redis, "the bind setting"), fix)
    wildcards = [a for a in _bind_addresses(bind) if a in WILDCARD_ADDRESSES]
    if not bind.strip():
        return _result("bind-not-wildcard", FAIL, "WildcardBind",
                       "bind is empty, so Redis listens on every interface.", fix)
    if wildcards:
        return _result("bind-not-wildcard", FAIL, "WildcardBind",
                       f"bind is {bind!r}, which includes the wildcard address "
                       f"{_listed(wildcards)}.", fix)
    return _result("bind-not-wildcard", PASS, "SpecificAddresses", f"bind is {bind!r}.", fix)


# 2. protected-mode
def check_protected_mode(redis: RedisFacts | None, kube: KubeFacts | None,
                         known: Known) -> CheckResult:
    fix = "Set protected-mode yes in redis.conf."
    value = _setting(redis, "protected-mode")
    if value is None:
        return _result("protected-mode", UNKNOWN, "FactsUnavailable",
                       _missing(redis, "protected-mode"), fix)
    if value != "yes":
        return _result("protected-mode", FAIL, "ProtectedModeOff",
                       f"protected-mode is {value!r}.", fix)
    return _result("protected-mode", PASS, "ProtectedModeOn", "protected-mode is yes.", fix)


# 3. default user
def check_default_user(redis: RedisFacts | None, kube: KubeFacts | None,
                       known: Known) -> CheckResult:
    fix = ("Switch the default user off in the ACL file with "
           "'user default off resetpass resetkeys resetchannels nocommands'.")
    users = acl_users(redis)
    if users is None:
        return _result("default-user-off", UNKNOWN, "FactsUnavailable",
                       _missing(redis, "ACL LIST"), fix)
    default = next((user for user in users if user.name == "default"), None)
    if default is None:
        return _result("default-user-off", UNKNOWN, "DefaultUserNotListed",
                       "ACL LIST does not list the default user.", fix)
    if default.enabled:
        how = " and accepts any password (nopass)" if default.nopass else ""
        return _result("default-user-off", FAIL, "DefaultUserOn",
                       f"The default user is on{how}.", fix)
    message = "The default user is off."
    if default.nopass:
        # Protected mode rejects remote clients while default has nopass,
        # even when it is off, and switching it on later would need no password.
        message += (" It still has the nopass flag, which 'resetpass' would clear; protected "
                    "mode then rejects clients that are not on loopback.")
    return _result("default-user-off", PASS, "DefaultUserOff", message, fix)


def _application_users(users: list[AclUser], known: Known) -> list[AclUser]:
    return [user for user in users if user.enabled and user.name not in known.admin_users
            and user.name not in known.system_users]


# 4. least privilege
def check_least_privilege(redis: RedisFacts | None, kube: KubeFacts | None,
                          known: Known) -> CheckResult:
    # Only the application's owner can tell whether fewer commands would do,
    # so the check catches the accounts that can run every command.
    fix = ("Give each application user only the commands and key patterns it needs, for "
           "example '~cache:* +get +mget', and mark real administrators as admins.")
    users = acl_users(redis)
    if users is None:
        return _result("least-privilege-users", UNKNOWN, "FactsUnavailable",
                       _missing(redis, "ACL LIST"), fix)
    unrestricted = [user.name for user in _application_users(users, known)
                    if grants_every_command(user.command_rules)
                    or any(grants_every_command(s) for s in user.selectors)]
    if unrestricted:
        return _result("least-privilege-users", FAIL, "UnrestrictedUsers",
                       f"Users that are not admins can run every command: "
                       f"{_listed(unrestricted)}.", fix)
    count = len(_application_users(users, known))
    return _result("least-privilege-users", PASS, "RestrictedUsers",
                   f"None of the {count} enabled application users can run every command.", fix)


def _system_allowance(rules: Iterable[str], dangerous: Iterable[str]) -> set[str]:
    """Return the dangerous commands that a system user's own ``+command`` rules grant.

    Grants inside a selector such as ``(~* +migrate)`` count too.
    """
    tokens: list[str] = []
    for rule in rules:
        tokens += rule[1:-1].split() if rule.startswith("(") else [rule]
    granted = {token[1:].lower() for token in tokens if token.startswith("+") and "@" not in token}
    return {command for command in dangerous
            if command in granted or command.partition("|")[0] in granted}


# 5. @dangerous
def check_dangerous_blocked(redis: RedisFacts | None, kube: KubeFacts | None,
                            known: Known) -> CheckResult:
    fix = ("Add -@dangerous after the grants of every user that is not an admin, then "
           "grant back single commands only where needed (SecureRedis does this).")
    if redis is None or redis.dangerous_verdicts is None or redis.dangerous_commands is None:
        return _result("dangerous-blocked", UNKNOWN, "FactsUnavailable",
                       _missing(redis, "the ACL DRYRUN verdicts for @dangerous commands"), fix)

    violations: list[str] = []
    undetermined: set[str] = set()
    checked = 0
    for user, verdicts in sorted(redis.dangerous_verdicts.items()):
        if user in known.admin_users:
            continue
        checked += 1
        allowance = _system_allowance(known.system_users.get(user, ()), redis.dangerous_commands)
        allowed = []
        for command, verdict in verdicts.items():
            if verdict == ALLOWED and command not in allowance:
                allowed.append(command)
            elif verdict == MISSING and known.renames.get(command.partition("|")[0]) == "":
                continue
            elif verdict in (MISSING, ERROR):
                undetermined.add(command)
        if allowed:
            violations.append(f"{user} ({_listed(allowed)})")

    if violations:
        return _result("dangerous-blocked", FAIL, "DangerousAllowed",
                       f"Users that are not admins can run @dangerous commands: "
                       f"{'; '.join(violations)}.", fix)
    if undetermined:
        return _result("dangerous-blocked", UNKNOWN, "DangerousUndetermined",
                       f"ACL DRYRUN could not check {_listed(undetermined)}, which are renamed "
                       "to a name not given or have unknown arguments; pass their new names.",
                       fix)
    return _result("dangerous-blocked", PASS, "DangerousBlocked",
                   f"None of the {checked} enabled users that are not admins can run a "
                   f"@dangerous command beyond what its role needs.", fix)


# 6. passwords
def check_password_strength(redis: RedisFacts | None, kube: KubeFacts | None,
                            known: Known) -> CheckResult:
    fix = (f"Give every user a random password of at least {MIN_PASSWORD_LENGTH} characters "
           "and remove nopass (SecureRedis generates 40-character passwords).")
    short = sorted(user for user, passwords in known.passwords.items()
                   if any(len(password) < MIN_PASSWORD_LENGTH for password in passwords))
    users = acl_users(redis)
    nopass = sorted(u.name for u in users or () if u.enabled and u.nopass)

    problems = []
    if nopass:
        problems.append(f"users that accept any password (nopass): {_listed(nopass)}")
    if short:
        problems.append(f"users with a password shorter than {MIN_PASSWORD_LENGTH} "
                        f"characters: {_listed(short)}")
    if problems:
        return _result("password-strength", FAIL, "WeakPasswords",
                       f"Found {'; and '.join(problems)}.", fix)

    if users is None:
        return _result("password-strength", UNKNOWN, "FactsUnavailable",
                       _missing(redis, "ACL LIST") + " Users with nopass cannot be ruled out.",
                       fix)
    # Redis stores only SHA-256 hashes, so a password's length is known only
    # for the passwords the caller manages.
    unchecked = sorted(u.name for u in users
                       if u.enabled and u.password_count and u.name not in known.passwords)
    if unchecked:
        return _result("password-strength", UNKNOWN, "PasswordsNotKnown",
                       f"Redis stores passwords only as hashes, so the length of the passwords "
                       f"of {_listed(unchecked)} cannot be checked.", fix)
    return _result("password-strength", PASS, "StrongPasswords",
                   f"No user has nopass, and all {len(known.passwords)} known users' passwords "
                   f"have at least {MIN_PASSWORD_LENGTH} characters.", fix)


def _tls_conditions(redis: RedisFacts) -> tuple[list[str], list[str]]:
    """Return the failed and the undetermined conditions of the TLS check."""
    failed: list[str] = []
    undetermined: list[str] = []

    if redis.tls is None:
        undetermined.append("whether the connection used TLS")
    elif not redis.tls:
        failed.append("the server accepted this connection without TLS")
    elif redis.tls_version not in SECURE_TLS_VERSIONS:
        failed.append(f"the connection negotiated {redis.tls_version}")

    port = _setting(redis, "port")
    if port is None:
        undetermined.append("whether the plaintext port is off")
    elif port != "0":
        failed.append(f"the plaintext port {port} is open")

    protocols = _setting(redis, "tls-protocols")
    if protocols is None:
        undetermined.append("tls-protocols")
    elif set(protocols.split()) & set(INSECURE_TLS_PROTOCOLS):
        failed.append(f"tls-protocols {protocols!r} allows TLS older than 1.2")

    auth_clients = _setting(redis, "tls-auth-clients")
    if redis.client_certificate_required is False or auth_clients in ("no", "optional"):
        failed.append(f"clients without a certificate are accepted (tls-auth-clients "
                      f"{auth_clients or 'not read'})")
    elif redis.client_certificate_required is None and auth_clients is None:
        undetermined.append("whether client certificates are required")

    replication = _setting(redis, "tls-replication")
    if replication is None:
        undetermined.append("tls-replication")
    elif replication != "yes":
        failed.append("replication runs without TLS (tls-replication no)")

    if _setting(redis, "cluster-enabled") == "yes" and _setting(redis, "tls-cluster") != "yes":
        failed.append("the cluster bus runs without TLS (tls-cluster no)")
    return failed, undetermined


# 7. TLS
def check_tls(redis: RedisFacts | None, kube: KubeFacts | None, known: Known) -> CheckResult:
    fix = ("Serve only TLS: port 0, tls-port, a certificate from a trusted CA, "
           "tls-auth-clients yes, tls-replication yes (and tls-cluster yes in a cluster), "
           "tls-protocols \"TLSv1.2 TLSv1.3\".")
    if redis is None:
        return _result("tls-enabled", UNKNOWN, "FactsUnavailable",
                       _missing(redis, "the TLS settings"), fix)
    failed, undetermined = _tls_conditions(redis)
    if failed:
        return _result("tls-enabled", FAIL, "TLSIncomplete", f"Found: {'; '.join(failed)}.", fix)
    if undetermined:
        return _result("tls-enabled", UNKNOWN, "TLSUndetermined",
                       f"The connection used {redis.tls_version} with a verified certificate "
                       f"chain, but these could not be read: {', '.join(undetermined)}.", fix)
    message = (f"Only TLS is served. This connection used {redis.tls_version} and a certificate "
               "chain verified against the trusted CA, and clients must present a certificate.")
    if redis.hostname_verified is False:
        message += " The host name was not checked."
    return _result("tls-enabled", PASS, "TLSOnly", message, fix)


# 8. renamed commands
def check_commands_renamed(redis: RedisFacts | None, kube: KubeFacts | None,
                           known: Known) -> CheckResult:
    fix = ("Rename each of FLUSHALL, FLUSHDB, CONFIG, DEBUG and SHUTDOWN with rename-command "
           "to \"\" (disabled) or to a random name.")
    if redis is None or redis.original_names_present is None:
        return _result("commands-renamed", UNKNOWN, "FactsUnavailable",
                       _missing(redis, "the COMMAND INFO lookups"), fix)
    present = []
    unknown = []
    for command in CHECKLIST_COMMANDS:
        found = redis.original_names_present.get(command)
        # Since Redis 7.0, enable-debug-command no blocks DEBUG for every
        # connection, which disables it as well as a rename would.
        if command == "debug" and _setting(redis, "enable-debug-command") == "no":
            continue
        if found is None:
            unknown.append(command.upper())
        elif found:
            present.append(command.upper())
    if present:
        return _result("commands-renamed", FAIL, "CommandsAvailable",
                       f"Still available under their original names: {', '.join(present)}.", fix)
    if unknown:
        return _result("commands-renamed", UNKNOWN, "FactsUnavailable",
                       f"COMMAND INFO could not look up {', '.join(unknown)}.", fix)
    return _result("commands-renamed", PASS, "CommandsRenamed",
                   "None of FLUSHALL, FLUSHDB, CONFIG, DEBUG and SHUTDOWN is available under "
                   "its original name.", fix)


def _kube_exposure(kube: KubeFacts) -> list[str]:
    problems = list(kube.exposed_services) + list(kube.host_exposure)
    if not kube.network_policy_found:
        problems.append("no NetworkPolicy")
    else:
        if kube.network_policy_selects_pods is False:
            problems.append("the NetworkPolicy does not select the Redis pods")
        missing_types = {"Ingress", "Egress"} - set(kube.network_policy_types)
        if missing_types:
            problems.append(f"the NetworkPolicy lacks policy types {_listed(missing_types)}")
        problems += kube.open_ingress_rules
    return problems


def _public_addresses(bind: str) -> tuple[list[str], bool]:
    """Return the bind addresses routable on the internet, and whether all are loopback."""
    public = []
    loopback_only = True
    for address in _bind_addresses(bind):
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            loopback_only = False
            continue
        if ip.is_global:
            public.append(address)
        if not ip.is_loopback:
            loopback_only = False
    return public, loopback_only and bool(bind.strip())


# 9. network exposure
def check_not_exposed(redis: RedisFacts | None, kube: KubeFacts | None,
                      known: Known) -> CheckResult:
    fix = ("Keep Redis behind ClusterIP or headless Services with a NetworkPolicy that admits "
           "only its clients (SecureRedis creates one); no NodePort, LoadBalancer, hostPort, "
           "hostNetwork or public bind address.")
    problems = _kube_exposure(kube) if kube is not None else []
    bind = _setting(redis, "bind")
    public, loopback_only = _public_addresses(bind) if bind is not None else ([], False)
    if public:
        problems.append(f"bind includes the public address {_listed(public)}")
    if problems:
        return _result("not-exposed", FAIL, "Exposed", f"Found: {'; '.join(problems)}.", fix)
    if kube is not None:
        return _result("not-exposed", PASS, "NotExposed",
                       "Only ClusterIP or headless Services, no host ports, and a NetworkPolicy "
                       "with ingress and egress rules selects the Redis pods.", fix)
    if loopback_only:
        return _result("not-exposed", PASS, "LoopbackOnly",
                       f"Redis listens only on loopback (bind {bind!r}).", fix)
    return _result("not-exposed", UNKNOWN, "FactsUnavailable",
                   "Whether the port can be reached from outside depends on the network around "
                   "the server; without the Kubernetes objects it cannot be told.", fix)


# 10. non-root
def check_non_root(redis: RedisFacts | None, kube: KubeFacts | None, known: Known) -> CheckResult:
    fix = ("Run the Redis containers with runAsNonRoot: true and a non-zero runAsUser in "
           "their securityContext.")
    if kube is None or kube.root_containers is None:
        return _result("non-root", UNKNOWN, "FactsUnavailable",
                       "The user that runs the Redis process is known only from the pod "
                       "template, which was not given.", fix)
    if kube.root_containers:
        return _result("non-root", FAIL, "MayRunAsRoot",
                       f"Not guaranteed to run as non-root: {'; '.join(kube.root_containers)}.",
                       fix)
    return _result("non-root", PASS, "NonRoot",
                   "Every container runs with runAsNonRoot and a non-zero uid.", fix)


# 11. maxmemory
def check_maxmemory(redis: RedisFacts | None, kube: KubeFacts | None, known: Known) -> CheckResult:
    fix = ("Set maxmemory below the container's memory limit (SecureRedis: spec.memory.maxmemory "
           "or a memory limit, which it takes 80% of).")
    value = _setting(redis, "maxmemory")
    if value is None:
        return _result("maxmemory-set", UNKNOWN, "FactsUnavailable",
                       _missing(redis, "maxmemory"), fix)
    if value.strip() in ("0", ""):
        return _result("maxmemory-set", FAIL, "Unlimited",
                       "maxmemory is 0, so Redis may use all the memory it can get.", fix)
    return _result("maxmemory-set", PASS, "Limited", f"maxmemory is {value} bytes.", fix)


# 12. ACL LOG
def check_acl_log(redis: RedisFacts | None, kube: KubeFacts | None, known: Known) -> CheckResult:
    fix = ("Set acllog-max-len above 0 (SecureRedis: spec.aclLog.maxLen) and watch ACL LOG. "
           "The operator turns new kinds of denials into Warning Events.")
    value = _setting(redis, "acllog-max-len")
    if value is None:
        return _result("acl-log-enabled", UNKNOWN, "FactsUnavailable",
                       _missing(redis, "acllog-max-len"), fix)
    if not value.isdigit() or int(value) <= 0:
        return _result("acl-log-enabled", FAIL, "ACLLogOff",
                       f"acllog-max-len is {value!r}, so ACL LOG keeps no denials.", fix)
    return _result("acl-log-enabled", PASS, "ACLLogOn",
                   f"ACL LOG keeps the last {value} denials.", fix)


Check = Callable[[RedisFacts | None, KubeFacts | None, Known], CheckResult]

# The checklist in its published order, as (id, title, check).
CHECKLIST: tuple[tuple[str, str, Check], ...] = (
    ("bind-not-wildcard", "bind lists specific addresses, not a wildcard", check_bind),
    ("protected-mode", "protected-mode is yes", check_protected_mode),
    ("default-user-off", "The default user is off", check_default_user),
    ("least-privilege-users", "Application users have least-privilege ACLs",
     check_least_privilege),
    ("dangerous-blocked", "@dangerous commands are blocked for users that are not admins",
     check_dangerous_blocked),
    ("password-strength", f"Passwords have at least {MIN_PASSWORD_LENGTH} random characters",
     check_password_strength),
    ("tls-enabled", "Only TLS is served, with a certificate from a trusted CA", check_tls),
    ("commands-renamed", "FLUSHALL, FLUSHDB, CONFIG, DEBUG and SHUTDOWN are renamed or disabled",
     check_commands_renamed),
    ("not-exposed", "The Redis port is not exposed outside its network", check_not_exposed),
    ("non-root", "Redis runs as a non-root user", check_non_root),
    ("maxmemory-set", "maxmemory is set", check_maxmemory),
    ("acl-log-enabled", "ACL LOG is enabled", check_acl_log),
)
TITLES = {check_id: title for check_id, title, _ in CHECKLIST}
CHECK_IDS = tuple(TITLES)


def run_checks(redis: RedisFacts | None, kube: KubeFacts | None,
               known: Known | None = None) -> list[CheckResult]:
    """Run every checklist item in order and return one result per item."""
    known = known or Known()
    return [check(redis, kube, known) for _, _, check in CHECKLIST]


def summary(results: Sequence[CheckResult]) -> tuple[int, int, list[str]]:
    """Return (passed, total, ids of failed checks); an unknown outcome is neither."""
    passed = sum(1 for r in results if r.outcome == PASS)
    failed = [r.id for r in results if r.outcome == FAIL]
    return passed, len(results), failed


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Return True if a Kubernetes label selector selects an object with ``labels``.

    An empty selector selects everything, as in a NetworkPolicy's podSelector.
    """
    for key, value in _mapping(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key = expression.get("key")
        operator = expression.get("operator")
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _open_ingress_rules(policy_spec: Mapping[str, Any]) -> tuple[str, ...]:
    """Describe the ingress rules that admit every source address."""
    problems = []
    for index, rule in enumerate(policy_spec.get("ingress") or []):
        peers = rule.get("from") or []
        if not peers:
            problems.append(f"ingress rule {index} admits every source")
        for peer in peers:
            cidr = _mapping(peer.get("ipBlock")).get("cidr")
            if cidr in ("0.0.0.0/0", "::/0"):
                problems.append(f"ingress rule {index} admits {cidr}")
    return tuple(problems)


def _service_exposure(services: list[dict],
                      pod_labels: Mapping[str, str] | None) -> tuple[str, ...]:
    """Describe the Services that select the Redis pods and reach outside the cluster."""
    problems = []
    for service in services:
        name = _mapping(service.get("metadata")).get("name", "<unnamed>")
        spec = _mapping(service.get("spec"))
        selector = spec.get("selector")
        # A Service without a selector has hand-made endpoints, and one that
        # selects other pods exposes those pods, not Redis.
        if not selector or (pod_labels is not None and not selector_matches(
                {"matchLabels": selector}, pod_labels)):
            continue
        service_type = spec.get("type", "ClusterIP")
        if service_type in EXPOSING_SERVICE_TYPES:
            problems.append(f"Service {name} has type {service_type}")
        if spec.get("externalIPs"):
            problems.append(f"Service {name} has externalIPs")
    return tuple(problems)


def _pod_exposure(pod_spec: Mapping[str, Any]) -> tuple[str, ...]:
    problems = []
    if pod_spec.get("hostNetwork"):
        problems.append("the pods use hostNetwork")
    for container in pod_spec.get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"container {container.get('name')} maps hostPort "
                                f"{port['hostPort']}")
    return tuple(problems)


def _root_containers(pod_spec: Mapping[str, Any]) -> tuple[str, ...]:
    """Describe each container whose effective securityContext allows running as root."""
    pod_context = _mapping(pod_spec.get("securityContext"))
    problems = []
    containers = list(pod_spec.get("initContainers") or []) + list(pod_spec.get("containers") or [])
    for container in containers:
        context = _mapping(container.get("securityContext"))
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        uid = context.get("runAsUser", pod_context.get("runAsUser"))
        name = container.get("name", "<unnamed>")
        if non_root is not True:
            problems.append(f"container {name} does not set runAsNonRoot: true")
        if uid is None:
            problems.append(f"container {name} sets no runAsUser, so the image picks the uid")
        elif uid == 0:
            problems.append(f"container {name} has runAsUser 0")
    return tuple(problems)


def kube_facts(statefulset: dict | None, network_policy: dict | None,
               services: list[dict]) -> KubeFacts:
    """Build KubeFacts from the live StatefulSet, NetworkPolicy and Services as plain dicts.

    ``services`` may hold every Service of the namespace: only those whose
    selector matches the Redis pod template's labels count, or all of them
    when the StatefulSet is not given.
    """
    template = _mapping(_mapping(_mapping(statefulset).get("spec")).get("template"))
    pod_labels = _mapping(_mapping(template.get("metadata")).get("labels"))
    pod_spec = _mapping(template.get("spec"))

    policy_spec = _mapping(_mapping(network_policy).get("spec"))
    selects_pods = None
    if network_policy is not None and statefulset is not None:
        same_namespace = (_mapping(network_policy.get("metadata")).get("namespace")
                          == _mapping(statefulset.get("metadata")).get("namespace"))
        selects_pods = same_namespace and selector_matches(
            _mapping(policy_spec.get("podSelector")), pod_labels)

    return KubeFacts(
        statefulset_found=statefulset is not None,
        network_policy_found=network_policy is not None,
        network_policy_selects_pods=selects_pods,
        network_policy_types=tuple(policy_spec.get("policyTypes") or ()),
        open_ingress_rules=_open_ingress_rules(policy_spec),
        exposed_services=_service_exposure(services,
                                           pod_labels if statefulset is not None else None),
        host_exposure=_pod_exposure(pod_spec),
        root_containers=_root_containers(pod_spec) if statefulset is not None else None,
    )


def system_user_rules(users: Iterable[acl.SystemUser]) -> dict[str, tuple[str, ...]]:
    """Map each system user's name to its rules, merging users that share a name.

    Used for ``Known.system_users``. Merging lets the audit accept the
    operator's users of any supported server version.
    """
    merged: dict[str, tuple[str, ...]] = {}
    for user in users:
        previous = merged.get(user.name, ())
        merged[user.name] = previous + tuple(r for r in user.rules if r not in previous)
    return merged
