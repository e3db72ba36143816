"""Command line: ``secure-redis render | version`` (``run`` and ``audit`` join later).

``render`` prints every child of one or more SecureRedis objects as YAML, for
review in a GitOps pipeline. It never talks to a cluster, so it generates
throwaway material; Secret values are replaced by ``<redacted>`` unless
``--show-secrets`` is given.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import Iterable, Sequence, TextIO

import yaml

from . import KIND, __version__, material, spec
from .render import RenderContext, render_all

REDACTED = "<redacted>"


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
        print(f"error: {args.filename} holds no {KIND} object", file=sys.stderr)
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

    version = commands.add_parser("version", help="print the operator's version")
    version.set_defaults(func=cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
