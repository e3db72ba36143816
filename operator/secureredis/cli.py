"""Command line: ``secure-redis run | render | audit | version``.

``run`` starts the operator: kopf handlers registered by ``handlers``, one
SecureRedis reconciled at a time per object, all namespaces or a list.

``render`` prints every child of one or more SecureRedis objects as YAML, for
review in a GitOps pipeline. It never talks to a cluster, so it generates
throwaway material; Secret values are replaced by ``<redacted>`` unless
``--show-secrets`` is given.

``audit`` runs the hardening checklist against any live Redis through the
same ``checks`` and ``redisadmin`` code as the operator's status, so both
report the same outcome. Passwords come from an environment variable or a
file, never from the command line, where other local users can read them.
Exit codes: 0 when no check failed, 1 when one did, 2 when the target could
not be audited.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Iterable, Sequence, TextIO
from urllib.parse import unquote, urlsplit

import yaml

from . import KIND, __version__, acl, checks, material, redisadmin, spec
from .engines import ENGINES, command_table
from .render import RenderContext, render_all

REDACTED = "<redacted>"
# redis-cli reads its password from this variable too.
PASSWORD_ENV_DEFAULT = "REDISCLI_AUTH"


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (redis.conf, users.acl, PEM) as literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def dump_yaml(objects: list[dict], stream: TextIO) -> None:
    yaml.dump_all(objects, stream, Dumper=_BlockDumper, sort_keys=False,
                  default_flow_style=False)


def redact(obj: dict) -> dict:
    """Return a copy of a child object with every Secret value replaced by a marker."""
    if obj.get("kind") != "Secret":
        return obj
    copy = dict(obj)
    copy["data"] = {key: REDACTED for key in obj.get("data", {})}
    return copy


def load_documents(stream: TextIO) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(stream) if isinstance(doc, dict)]


def render_objects(documents: Iterable[dict], *, show_secrets: bool,
                   context: RenderContext) -> tuple[list[dict], list[str]]:
    """Render every SecureRedis among ``documents``; returns children and error lines."""
    children: list[dict] = []
    errors: list[str] = []
    now = datetime.now(timezone.utc)
    for document in documents:
        if document.get("kind") != KIND:
            continue
        name = (document.get("metadata") or {}).get("name", "<unnamed>")
        try:
            sr = spec.load(document)
        except spec.SpecError as error:
            errors += [f"SecureRedis {name}: {field_error}" for field_error in error.errors]
            continue
        generated = material.ensure(sr, None, now=now)
        for child in render_all(sr, generated, context):
            children.append(child if show_secrets else redact(child))
    return children, errors


def cmd_render(args: argparse.Namespace) -> int:
    if args.filename == "-":
        documents = load_documents(sys.stdin)
    else:
        with open(args.filename, encoding="utf-8") as handle:
            documents = load_documents(handle)
    if not any(doc.get("kind") == KIND for doc in documents):
        print(f"error: {args.filename} contains no {KIND} object", file=sys.stderr)
        return 2

    context = RenderContext(operator_namespace=args.operator_namespace)
    children, errors = render_objects(documents, show_secrets=args.show_secrets, context=context)
    for line in errors:
        print(f"error: {line}", file=sys.stderr)
    if errors:
        return 2

    print("# Rendered offline: certificates, passwords and random command names are\n"
          "# throwaway values; the operator generates its own and keeps them.")
    dump_yaml(children, sys.stdout)
    return 0


class UsageError(Exception):
    """Invalid command-line input, with a message that tells how to fix it."""


@dataclass(frozen=True)
class AuditTarget:
    """Server that ``audit`` connects to, parsed from a redis:// or rediss:// URL."""

    tls: bool
    host: str
    port: int
    username: str | None

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'rediss' if self.tls else 'redis'}://{user}{host}:{self.port}"


def parse_audit_url(url: str, user: str | None) -> AuditTarget:
    """Parse ``rediss://[user@]host[:port]``; ``user`` (from --user) must agree with the URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise UsageError(f"{url!r} is not a Redis URL; write rediss://[user@]host:port "
                         "(or redis:// for a server without TLS)")
    if parts.password is not None:
        raise UsageError("the URL contains a password, which other local users can read in "
                         "the process list; remove it and use --password-env or --password-file")
    if parts.path not in ("", "/", "/0") or parts.query or parts.fragment:
        raise UsageError(f"{url!r} has a path or query; the audit needs only the host and port")
    try:
        port = parts.port or 6379
    except ValueError as error:
        raise UsageError(f"{url!r} has an invalid port: {error}") from None
    if not parts.hostname:
        raise UsageError(f"{url!r} names no host")

    url_user = unquote(parts.username) if parts.username else None
    if user and url_user and user != url_user:
        raise UsageError(f"--user {user!r} differs from the URL's user {url_user!r}; give one")
    return AuditTarget(parts.scheme == "rediss", parts.hostname, port, user or url_user)


def read_password(args: argparse.Namespace) -> str | None:
    """Return the password from --password-file, else from the --password-env variable."""
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as handle:
                return handle.read().removesuffix("\n").removesuffix("\r")
        except OSError as error:
            raise UsageError(f"cannot read --password-file: {error}") from None
    password = os.environ.get(args.password_env)
    if password is None and args.password_env != PASSWORD_ENV_DEFAULT:
        raise UsageError(f"the environment variable {args.password_env} named by "
                         "--password-env is not set")
    return password or None


def parse_renames(entries: Sequence[str]) -> dict[str, str]:
    """Parse ``CMD=NAME`` entries; an empty NAME means the command is disabled."""
    renames = {}
    for entry in entries:
        command, separator, name = entry.partition("=")
        if not separator or not command.strip():
            raise UsageError(f"--renamed {entry!r} is invalid; write COMMAND=NEW_NAME, or "
                             "COMMAND= for a disabled command")
        renames[command.strip().lower()] = name.strip()
    return renames


def operator_system_users() -> dict[str, tuple[str, ...]]:
    """Return the rules of the operator's own users across every supported server version."""
    users: list[acl.SystemUser] = []
    for key, engine in ENGINES.items():
        users += acl.system_users(engine.replication_commands, command_table(key))
    return checks.system_user_rules(users)


def print_results(target: AuditTarget, results: list[checks.CheckResult], output: str,
                  stream: TextIO) -> None:
    passed, total, failed = checks.summary(results)
    if output == "json":
        document = {"target": str(target), "passed": passed, "total": total, "failed": failed,
                    "checks": [asdict(r) for r in results]}
        json.dump(document, stream, indent=2)
        stream.write("\n")
        return

    print(f"Audit of {target}", file=stream)
    for check in results:
        print(f"{check.outcome.upper():<8} {check.id}: {check.title}", file=stream)
        print(f"{'':<8} {check.message}", file=stream)
        if check.outcome == checks.FAIL:
            print(f"{'':<8} fix: {check.fix}", file=stream)
    unknown = sum(1 for r in results if r.outcome == checks.UNKNOWN)
    print(f"{passed}/{total} checks passed, {len(failed)} failed, {unknown} unknown.",
          file=stream)


def cmd_audit(args: argparse.Namespace) -> int:
    try:
        target = parse_audit_url(args.url, args.user)
        password = read_password(args)
        renames = parse_renames(args.renamed)
        if not target.tls and (args.cacert or args.cert or args.key or args.tls_server_name):
            raise UsageError("--cacert, --cert, --key and --tls-server-name apply only to "
                             "rediss:// URLs")
        if bool(args.cert) != bool(args.key):
            raise UsageError("give --cert and --key together")
        if target.username and password is None:
            raise UsageError(f"no password for user {target.username!r}: set "
                             f"{args.password_env} or use --password-file")
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    try:
        client = redisadmin.connect(
            target.host, target.port, tls=target.tls, ca_file=args.cacert,
            cert_file=args.cert, key_file=args.key, username=target.username,
            password=password, server_hostname=args.tls_server_name,
            check_hostname=not args.insecure_skip_hostname, timeout=args.timeout)
    except redisadmin.RedisAdminError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        facts = redisadmin.gather_facts(client, renames)
    except redisadmin.RedisAdminError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        client.close()

    user = target.username or "default"
    known = checks.Known(
        admin_users=frozenset(args.admin),
        system_users=operator_system_users(),
        passwords={user: (password,)} if password else {},
        renames=renames,
    )
    results = checks.run_checks(facts, None, known)
    print_results(target, results, args.output, sys.stdout)
    return 1 if checks.summary(results)[2] else 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the operator until it is stopped (SIGINT or SIGTERM)."""
    import kopf

    from . import handlers

    if args.kubeconfig:
        # kopf's own login reads the kubeconfig named by KUBECONFIG.
        os.environ["KUBECONFIG"] = args.kubeconfig
    kopf.configure(verbose=args.verbose, log_prefix=True)
    if args.metrics_port:
        from . import metrics

        logger = logging.getLogger(__name__)
        try:
            metrics.start_server(args.metrics_port)
            logger.info("serving metrics port=%d path=/metrics", args.metrics_port)
        except OSError as error:
            # Only a second operator on the same host (tests, a developer's
            # machine) can hold the port; a pod has its own. Reconciling
            # matters more than metrics, so the operator runs on without them.
            logger.error("starting the metrics server failed port=%d error=%s; choose another "
                         "port with --metrics-port, or 0 to turn metrics off", args.metrics_port,
                         error)

    registry = kopf.OperatorRegistry()
    handlers.register(registry, handlers.OperatorConfig(
        resync_seconds=args.resync_interval,
        namespaces=tuple(args.namespace),
        acl_log_seconds=args.acl_log_interval,
        kubeconfig=args.kubeconfig,
        context=RenderContext(operator_namespace=args.operator_namespace),
    ))
    kopf.run(
        registry=registry,
        settings=handlers.build_settings(),
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace or (),
        liveness_endpoint=args.liveness,
    )
    return 0


def _port(text: str) -> int:
    """Parse a TCP port for --metrics-port; 0 is allowed and means off."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 0-65535")
    return port


def cmd_version(_: argparse.Namespace) -> int:
    print(__version__)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="secure-redis", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    render = commands.add_parser("render", help="print the children of SecureRedis objects as YAML")
    render.add_argument("-f", "--filename", required=True,
                        help="YAML file with one or more SecureRedis objects, or - for stdin")
    render.add_argument("--show-secrets", action="store_true",
                        help="print Secret values instead of <redacted>")
    render.add_argument("--operator-namespace", default="secure-redis-system",
                        help="namespace of the operator's pods, admitted by NetworkPolicies "
                             "(default: %(default)s)")
    render.set_defaults(func=cmd_render)

    audit = commands.add_parser(
        "audit", help="run the hardening checklist against a live Redis",
        description="Run the Redis hardening checklist against a live server and print each "
                    "check as PASS, FAIL or UNKNOWN. Exit code: 0 if no check failed, 1 if one "
                    "did, 2 if the server could not be audited.")
    audit.add_argument("url", help="rediss://[user@]host:port, or redis://host:port for a "
                                   "server without TLS")
    audit.add_argument("--cacert", help="PEM file of the CA that issued the server certificate "
                                        "(default: the system's CAs)")
    audit.add_argument("--cert", help="PEM client certificate, for servers that require one")
    audit.add_argument("--key", help="PEM private key of --cert")
    audit.add_argument("--tls-server-name",
                       help="name the server certificate must carry, when it differs from the "
                            "URL's host (for example a Service name when connecting to a pod IP)")
    audit.add_argument("--user", help="ACL user to log in as (default: the URL's user, else "
                                      "default)")
    password = audit.add_mutually_exclusive_group()
    password.add_argument("--password-env", default=PASSWORD_ENV_DEFAULT, metavar="VAR",
                          help="environment variable that contains the password "
                               "(default: %(default)s)")
    password.add_argument("--password-file", metavar="FILE",
                          help="file whose content is the password; a final newline is ignored")
    audit.add_argument("--admin", action="append", default=[], metavar="USER",
                       help="a user that is meant to have every command, exempt from the "
                            "least-privilege and @dangerous checks; repeatable")
    audit.add_argument("--renamed", action="append", default=[], metavar="CMD=NAME",
                       help="a command renamed with rename-command, such as config=CONFIG_x1; "
                            "CMD= means disabled; repeatable")
    audit.add_argument("--insecure-skip-hostname", action="store_true",
                       help="for debugging only: accept a server certificate that does not "
                            "name the host; the chain is still verified")
    audit.add_argument("--output", choices=("text", "json"), default="text",
                       help="output format (default: %(default)s)")
    audit.add_argument("--timeout", type=float, default=redisadmin.DEFAULT_TIMEOUT_SECONDS,
                       help="seconds to wait for the connection and each reply "
                            "(default: %(default)s)")
    audit.set_defaults(func=cmd_audit)

    run = commands.add_parser("run", help="run the operator (in a pod, or with a kubeconfig)")
    run.add_argument("--kubeconfig", help="kubeconfig file; in a pod the ServiceAccount is used")
    run.add_argument("-n", "--namespace", action="append", default=[],
                     help="watch only this namespace (repeatable); all namespaces when omitted")
    run.add_argument("--resync-interval", type=float, default=60.0,
                     help="seconds between resyncs of each SecureRedis (default: %(default)s)")
    run.add_argument("--acl-log-interval", type=float, default=30.0,
                     help="seconds between reads of ACL LOG on every pod (default: %(default)s)")
    run.add_argument("--operator-namespace",
                     default=os.environ.get("POD_NAMESPACE", "secure-redis-system"),
                     help="namespace of the operator's pods, admitted to Redis by NetworkPolicies "
                          "(default: $POD_NAMESPACE or %(default)s)")
    run.add_argument("--liveness", default=None,
                     help="serve a liveness endpoint at this URL, for example "
                          "http://0.0.0.0:8080/healthz")
    run.add_argument("--metrics-port", type=_port, default=8081,
                     help="serve Prometheus metrics at http://0.0.0.0:PORT/metrics; 0 turns "
                          "them off (default: %(default)s)")
    run.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    run.set_defaults(func=cmd_run)

    version = commands.add_parser("version", help="print the operator's version")
    version.set_defaults(func=cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
