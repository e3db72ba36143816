"""Supported server versions and the facts that differ between them.

A SecureRedis names its server with ``spec.version``. Each entry here fixes
the default image, the binaries inside it and the command table that ACL
rules are checked against. The tables under ``data/`` are dumps of real
servers made by ``hack/gen-command-tables.py``, so validation never guesses
which commands or categories a version has.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Engine:
    """One supported server line, such as Redis 7.0 or Valkey 8.1."""

    key: str
    flavor: str
    version: str
    image: str
    server_binary: str
    cli_binary: str
    # Commands the replication user needs. Valkey 8 dual-channel replication
    # also sends SYNC, so its replicas fail without +sync.
    replication_commands: tuple[str, ...]


ENGINES: dict[str, Engine] = {
    engine.key: engine
    for engine in (
        Engine("redis-7.0", "redis", "7.0", "localhost/secure-redis/redis:7.0",
               "redis-server", "redis-cli", ("psync", "replconf", "ping")),
        Engine("redis-8.0", "redis", "8.0", "localhost/secure-redis/redis:8.0",
               "redis-server", "redis-cli", ("psync", "replconf", "ping")),
        Engine("valkey-8.1", "valkey", "8.1", "localhost/secure-redis/valkey:8.1",
               "valkey-server", "valkey-cli", ("psync", "replconf", "ping", "sync")),
    )
}

DEFAULT_ENGINE = "redis-7.0"


@dataclass(frozen=True)
class CommandTable:
    """Commands, subcommands and ACL categories of one server version."""

    flavor: str
    version: str
    categories: frozenset[str]
    # command -> categories of the command itself
    command_categories: dict[str, frozenset[str]]
    # command -> subcommand -> categories
    subcommands: dict[str, dict[str, frozenset[str]]]

    def has_command(self, name: str) -> bool:
        return name.lower() in self.command_categories

    def has_subcommand(self, command: str, sub: str) -> bool:
        return sub.lower() in self.subcommands.get(command.lower(), {})

    def is_dangerous(self, command: str, sub: str | None = None) -> bool:
        """Return True if the command, or with no ``sub`` any of its subcommands, is in @dangerous."""
        command = command.lower()
        if sub is not None and sub.lower() in self.subcommands.get(command, {}):
            return "dangerous" in self.subcommands[command][sub.lower()]
        if "dangerous" in self.command_categories.get(command, frozenset()):
            return True
        if sub is None:
            return any("dangerous" in cats for cats in self.subcommands.get(command, {}).values())
        return False


@functools.cache
def command_table(engine_key: str) -> CommandTable:
    """Load the command table dumped from a real server of this version."""
    engine = ENGINES[engine_key]
    name = f"commands-{engine.flavor}-{engine.version}.json"
    raw = json.loads(resources.files("secureredis").joinpath("data", name).read_text("utf-8"))
    return CommandTable(
        flavor=raw["flavor"],
        version=raw["version"],
        categories=frozenset(raw["categories"]),
        command_categories={
            cmd: frozenset(entry["categories"]) for cmd, entry in raw["commands"].items()
        },
        subcommands={
            cmd: {sub: frozenset(cats) for sub, cats in entry["subcommands"].items()}
            for cmd, entry in raw["commands"].items()
        },
    )
