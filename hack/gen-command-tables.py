#!/usr/bin/env python3
"""Dump the command and ACL category table of a real Redis or Valkey server.

The spec validator checks every `+cmd`, `+cmd|sub` and `+@category` rule
against the server version the SecureRedis runs, and it must not guess: these
tables are read from the servers themselves with `COMMAND` and `ACL CAT`.

Usage: gen-command-tables.py --server-cmd "redis-server" --out FILE.json
The server is started on 127.0.0.1 with a throwaway config and stopped after.
A build root can be used with `--server-cmd "chroot ROOT redis-server"`.
"""

import argparse
import json
import shlex
import socket
import subprocess
import sys
import time

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def to_text(value):
    return value.decode() if isinstance(value, bytes) else value


def categories_of(entry) -> list[str]:
    # COMMAND reply element 7 (Redis >= 7.0) lists ACL categories as "@name".
    return sorted(to_text(c).lstrip("@") for c in entry[6])


def dump(client: redis.Redis) -> dict:
    # redis-py reshapes the COMMAND reply into a dict that drops subcommands.
    client.set_response_callback("COMMAND", lambda response, **options: response)
    raw = client.execute_command("COMMAND")
    commands = {}
    for entry in raw:
        name = to_text(entry[0]).lower()
        subcommands = {}
        if len(entry) > 9:
            for sub in entry[9]:
                full = to_text(sub[0]).lower()
                subcommands[full.split("|", 1)[1]] = categories_of(sub)
        commands[name] = {"categories": categories_of(entry), "subcommands": subcommands}

    info = client.info("server")
    version = info.get("valkey_version") or info["redis_version"]
    flavor = "valkey" if "valkey_version" in info else "redis"
    categories = sorted(to_text(c) for c in client.execute_command("ACL", "CAT"))
    return {"flavor": flavor, "version": version, "categories": categories,
            "commands": dict(sorted(commands.items()))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-cmd", default="redis-server",
                        help="command that starts the server (split like a shell would)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()

    port = free_port()
    argv = shlex.split(args.server_cmd) + [
        "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--daemonize", "no", "--dir", "/tmp", "--logfile", "",
    ]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(host="127.0.0.1", port=port, protocol=2)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        table = dump(client)
    finally:
        server.terminate()
        server.wait(timeout=10)

    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(table, handle, indent=1, sort_keys=False)
        handle.write("\n")
    print(f"wrote {args.out}: {table['flavor']} {table['version']}, "
          f"{len(table['commands'])} commands", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
