#!/usr/bin/env bash
# Install the Debian packages the unit and redis test tiers need: a real
# redis-server and redis-cli (Redis 7.0 on bookworm) and the Python venv
# module. Idempotent and quiet when everything is present.
set -euo pipefail

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
python3 -c "import ensurepip" 2>/dev/null || missing+=(python3-venv)
command -v lua5.4 >/dev/null || missing+=(lua5.4)

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing packages: ${missing[*]}; run as root or install them with apt-get" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Debian package starts a system-wide server on 127.0.0.1:6379 where
# systemd runs; the tests start their own servers on free ports and do not
# need it.
