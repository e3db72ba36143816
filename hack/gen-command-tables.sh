#!/usr/bin/env bash
# Regenerate operator/secureredis/data/commands-*.json from real servers:
# Redis 7.0 from the host's Debian bookworm package, Redis 8.0 and Valkey 8.1
# from Debian trixie packages inside a debootstrap build root (their binaries
# need trixie's libc, so they run chrooted; the chroot shares the host's
# loopback, and the servers listen only on 127.0.0.1).
set -euo pipefail

cache="${SRO_CACHE:-/var/cache/secure-redis-operator}/cmdtables"
root="$cache/trixie-root"
here="$(cd "$(dirname "$0")/.." && pwd)"
out="$here/operator/secureredis/data"

command -v redis-server >/dev/null || { echo "redis-server is missing: run apt-get install redis-server" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "debootstrap is missing: run apt-get install debootstrap" >&2; exit 1; }

if [ ! -x "$root/usr/bin/redis-server" ]; then
    mkdir -p "$cache"
    debootstrap --variant=minbase --include=redis-server trixie "$root" http://deb.debian.org/debian
fi
if [ ! -x "$root/opt/valkey/usr/bin/valkey-server" ]; then
    # valkey-server conflicts with redis-server as a package, so unpack it aside.
    chroot "$root" bash -c 'cd /tmp && apt-get download valkey-server'
    dpkg-deb -x "$root"/tmp/valkey-server_*.deb "$root/opt/valkey"
fi

python3 "$here/hack/gen-command-tables.py" --server-cmd redis-server --out "$out/commands-redis-7.0.json"
python3 "$here/hack/gen-command-tables.py" --server-cmd "chroot $root redis-server" --out "$out/commands-redis-8.0.json"
python3 "$here/hack/gen-command-tables.py" --server-cmd "chroot $root /opt/valkey/usr/bin/valkey-server" --out "$out/commands-valkey-8.1.json"
