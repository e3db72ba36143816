"""ACL rules: validation against a server's command table, and users.acl text.

A SecureRedis lists each user's rules as ACL SETUSER tokens. Validation here
rejects anything Redis would reject when it loads the ACL file (one bad line
makes the whole file fail to load) and anything that would break a security
invariant:

- password rules (``>``, ``<``, ``#``, ``!``, ``nopass``, ``resetpass``) are
  rejected because passwords come from Secrets, and ``on``/``off``/``reset``
  because the operator owns a user's state;
- commands, subcommands and categories must exist on the chosen version;
- users that are not ``admin`` may not grant a command in @dangerous; the
  operator also appends ``-@dangerous`` to their rules and to each of their
  selectors, so a category such as ``+@all`` cannot reach one either.

Users the operator itself needs (operator, replication, probe, exporter) are
defined here too, with the smallest command sets that work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .engines import CommandTable

# ACL user names double as Secret name suffixes, so they stay within the
# characters a DNS label allows, plus '_' (mapped to '-' in Secret names).
USER_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9_-]{0,30}[a-z0-9])?$")
SYSTEM_USER_PREFIX = "secureredis-"
# A pattern is one ACL token: printable ASCII without spaces or quotes, which
# the ACL file parser would split or keep literally.
PATTERN_RE = re.compile(r'^[!#-&(-~]+$')
COMMAND_NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]*$")

PASSWORD_TOKENS = ("nopass", "resetpass")
STATE_TOKENS = ("on", "off", "reset")
KEY_TOKENS = ("allkeys", "resetkeys")
CHANNEL_TOKENS = ("allchannels", "resetchannels")
COMMAND_TOKENS = ("allcommands", "nocommands")


@dataclass(frozen=True)
class SystemUser:
    """A user the operator creates for its own work; never set in a spec."""

    role: str
    name: str
    rules: tuple[str, ...]


# Rules granted only where the server has the command: CLIENT SETINFO came
# in Redis 7.2, and redis-py sends it on connect (a denial would fill ACL LOG).
VERSION_DEPENDENT_RULES = ("+client|setinfo",)


def system_users(replication_commands: tuple[str, ...],
                 table: CommandTable) -> tuple[SystemUser, ...]:
    """Return the operator's own users with least-privilege rules for one server version.

    ``replication_commands`` comes from the engine, because Valkey 8 replicas
    also need SYNC.
    """
    def supported(rule: str) -> bool:
        if rule not in VERSION_DEPENDENT_RULES:
            return True
        command, _, sub = rule[1:].partition("|")
        return table.has_subcommand(command, sub)

    users = (
        SystemUser("operator", SYSTEM_USER_PREFIX + "operator", (
            # Connection set-up and health.
            "+ping", "+hello", "+client|setname", "+client|setinfo", "+client|list", "+info",
            "+role",
            # ACL management for rotation and the ACL LOG watch.
            "+acl|setuser", "+acl|getuser", "+acl|list", "+acl|users", "+acl|log", "+acl|whoami",
            # The checklist: which dangerous commands each user could run, and
            # whether the checklist's commands still answer to their names.
            "+acl|cat", "+acl|dryrun", "+command|info",
            # TLS reloads (CONFIG is renamed, ACL rules keep the real name),
            # masterauth updates and the audit's configuration checks.
            "+config|get", "+config|set",
            # Replication topology and Redis Cluster bootstrap and repair.
            "+replicaof", "+failover", "+wait", "+cluster",
            # Resharding. MIGRATE needs access to the keys it moves, and logs in
            # to the target as this user (AUTH2), where it runs SELECT 0 and
            # RESTORE-ASKING. Key access comes only with these two commands, in
            # a selector, so the user still cannot read or write a key directly.
            # SELECT is granted whole: "+select|0" works on Redis 7.0 but is a
            # deprecated form that a later version may reject at ACL load.
            "+select", "(~* +migrate +restore-asking)",
            "+slowlog|get", "+slowlog|len",
        )),
        SystemUser("replication", SYSTEM_USER_PREFIX + "replication",
                   tuple(f"+{command}" for command in replication_commands)),
        SystemUser("probe", SYSTEM_USER_PREFIX + "probe", ("+ping",)),
        SystemUser("exporter", SYSTEM_USER_PREFIX + "exporter", (
            "+ping", "+hello", "+client|setname", "+client|setinfo", "+info", "+config|get",
            "+client|list", "+slowlog|get", "+slowlog|len", "+latency|latest", "+cluster|info",
            "+memory|stats",
        )),
    )
    return tuple(SystemUser(u.role, u.name, tuple(r for r in u.rules if supported(r)))
                 for u in users)


def check_user_name(name: object) -> str | None:
    """Return why ``name`` cannot be an application user's name, or None if it can."""
    if not isinstance(name, str) or not USER_NAME_RE.match(name):
        return (f"{name!r} is not a valid user name; use 1 to 32 lowercase letters, digits, "
                "'_' or '-', starting and ending with a letter or digit")
    if name == "default":
        return ("'default' is the built-in user, which the operator keeps disabled; "
                "choose another name")
    if name.startswith(SYSTEM_USER_PREFIX):
        return (f"names starting with {SYSTEM_USER_PREFIX!r} are reserved for the operator's "
                "own users; choose another name")
    return None


def secret_suffix(user_name: str) -> str:
    """Map a user name to the DNS-label form used in its Secret's name."""
    return user_name.replace("_", "-")


def split_tokens(rule: str) -> list[str]:
    """Split one rules entry into ACL tokens, keeping each ``(selector)`` whole.

    Raises ValueError when parentheses do not balance.
    """
    tokens: list[str] = []
    current = ""
    depth = 0
    for char in rule:
        if char == "(":
            if depth:
                raise ValueError("selectors cannot be nested; close the first '(' before "
                                 "opening another")
            if current:
                # The text before '(' may be a password rule such as '>pw'.
                shown = _shown(current) if current[0] in "><#!" else repr(current)
                raise ValueError(f"'(' must start a token, but it follows {shown}")
            depth = 1
            current = char
        elif char == ")":
            if not depth:
                raise ValueError("')' has no matching '('")
            depth = 0
            tokens.append(current + char)
            current = ""
        elif char.isspace() and not depth:
            if current:
                tokens.append(current)
            current = ""
        else:
            current += char
    if depth:
        raise ValueError("a selector '(' is never closed; add ')'")
    if current:
        tokens.append(current)
    return tokens


def check_rule(rule: object, table: CommandTable, *, admin: bool) -> list[str]:
    """Return every problem with one rules entry; an empty list means it is valid."""
    if not isinstance(rule, str) or not rule.strip():
        return ["must be a non-empty string of ACL rules, such as \"~cache:*\" or \"+get\""]
    try:
        tokens = split_tokens(rule)
    except ValueError as error:
        return [str(error)]

    problems = []
    for token in tokens:
        if token.startswith("("):
            inner = token[1:-1]
            if not inner.strip():
                problems.append("an empty selector '()' grants nothing; remove it")
            for inner_token in inner.split():
                problem = _check_token(inner_token, table, admin=admin, in_selector=True)
                if problem:
                    problems.append(problem)
        else:
            problem = _check_token(token, table, admin=admin, in_selector=False)
            if problem:
                problems.append(problem)
    return problems


def _check_token(token: str, table: CommandTable, *, admin: bool, in_selector: bool) -> str | None:
    lowered = token.lower()
    where = "in a selector" if in_selector else ""

    if token[0] in "><#!" or lowered in PASSWORD_TOKENS:
        return (f"{_shown(token)} is a password rule; passwords come from the user's Secret or "
                "passwordSecretRef, so remove it from the rules")
    if lowered in STATE_TOKENS:
        return (f"{token!r} is not allowed: the operator sets a user on or off from "
                "'enabled' and never resets users; remove it")
    if lowered == "clearselectors":
        return None if not in_selector else "'clearselectors' is not allowed inside a selector"
    if lowered in KEY_TOKENS + CHANNEL_TOKENS + COMMAND_TOKENS:
        return None

    if token.startswith("~"):
        return _check_pattern(token[1:], token, "key")
    if token.startswith("%"):
        match = re.match(r"^%([RWrw]+)~(.*)$", token)
        if not match or set(match.group(1).upper()) - {"R", "W"}:
            return (f"{token!r} is not a key permission; write %R~pattern, %W~pattern or "
                    "%RW~pattern")
        return _check_pattern(match.group(2), token, "key")
    if token.startswith("&"):
        return _check_pattern(token[1:], token, "channel")

    if token[0] in "+-":
        return _check_command_rule(token, table, admin=admin, where=where)

    return (f"{token!r} is not an ACL rule; rules look like ~pattern, %R~pattern, &channel, "
            "+command, -command, +command|subcommand, +@category, allkeys or nocommands")


def _shown(token: str) -> str:
    # Never echo a password back into an error, an Event or a log line.
    if token[0] in "><":
        return f"'{token[0]}…'"
    return repr(token) if token.lower() in PASSWORD_TOKENS else f"'{token[0]}…'"


def _check_pattern(pattern: str, token: str, kind: str) -> str | None:
    if not pattern:
        return f"{token!r} has an empty {kind} pattern; add a pattern such as {token}app:*"
    if not PATTERN_RE.match(pattern):
        return (f"{token!r} has characters an ACL file cannot hold (spaces, quotes or "
                "non-ASCII); use printable ASCII only")
    return None


def _check_command_rule(token: str, table: CommandTable, *, admin: bool, where: str) -> str | None:
    sign, body = token[0], token[1:].lower()
    version = f"{table.flavor} {table.version}"

    if body.startswith("@"):
        category = body[1:]
        # "@all" is built into the ACL parser and not listed by ACL CAT.
        if category != "all" and category not in table.categories:
            return (f"{token!r}: {category!r} is not an ACL category of {version}; "
                    f"known categories: {', '.join(sorted(table.categories))}")
        if sign == "+" and category == "dangerous" and not admin:
            return (f"{token!r} grants the dangerous commands; only users with admin: true may "
                    "have them")
        return None

    command, _, sub = body.partition("|")
    if not command or not COMMAND_NAME_RE.match(command):
        return f"{token!r} has no valid command name after {sign!r}"
    if not table.has_command(command):
        return f"{token!r}: {command!r} is not a {version} command; check the spelling"
    if sub:
        if table.subcommands.get(command):
            if not table.has_subcommand(command, sub):
                subs = ", ".join(sorted(table.subcommands[command]))
                return (f"{token!r}: {sub!r} is not a subcommand of {command} in {version}; "
                        f"known subcommands: {subs}")
        elif sign == "-":
            return (f"{token!r}: {command} has no subcommands, and Redis cannot remove a first "
                    "argument; remove the rule")
    if sign == "+" and not admin and table.is_dangerous(command, sub or None):
        return (f"{token!r} grants a command in @dangerous, which only users with admin: true "
                "may have; remove it or set admin: true")
    return None


def user_line(name: str, password_hashes: list[str], rules: tuple[str, ...], *,
              enabled: bool, block_dangerous: bool) -> str:
    """Render one users.acl line.

    The user starts from an empty state (no keys, channels or commands) so a
    line means the same whether it is loaded at start-up or later applied
    with ACL SETUSER. Passwords appear only as SHA-256 hashes.
    """
    if not password_hashes:
        raise ValueError(f"user {name} has no password; every enabled user needs one")
    parts = ["user", name, "on" if enabled else "off", "resetpass"]
    parts += [f"#{digest}" for digest in password_hashes]
    parts += ["resetkeys", "resetchannels", "nocommands", "clearselectors"]
    for rule in rules:
        for token in split_tokens(rule):
            if block_dangerous and token.startswith("("):
                token = token[:-1].rstrip() + " -@dangerous)"
            parts.append(token)
    if block_dangerous:
        parts.append("-@dangerous")
    return " ".join(parts)


def default_user_line() -> str:
    """Render the line that switches ``default`` off with no password and no rights.

    Without it the ACL file would leave ``default`` as ``on nopass ~* &* +@all``.
    ``resetpass`` also clears ``nopass``, which protected mode checks even for a
    user that is off.
    """
    return "user default off resetpass resetkeys resetchannels nocommands"
