#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv and install
# the package with its test dependencies. Idempotent: a second run only
# reinstalls when pyproject.toml changed.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.pyproject.sha256"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" || {
        echo "creating a virtual environment failed: install python3-venv (apt-get install python3-venv)" >&2
        exit 1
    }
fi

want="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$venv/bin/python" -c "import secureredis" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet -e "$root[test]"
    echo "$want" > "$stamp"
fi
