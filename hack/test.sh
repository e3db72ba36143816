#!/usr/bin/env bash
# Run the test suite, tier by tier, on a fresh Linux machine (as root):
#   unit         pure builders and validation
#   redis        real redis-server processes on 127.0.0.1
#   cluster      smoke tests of the local Kubernetes built by hack/
#   integration  the operator against a real API server (control-plane tier)
#   e2e          real Redis pods on a real node (node tier)
# SRO_TIERS selects tiers, for example SRO_TIERS="unit redis". Everything the
# tiers need is installed first; slow builds are cached under SRO_CACHE
# (default /var/cache/secure-redis-operator), outside the clone.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tiers="${SRO_TIERS:-unit redis cluster integration e2e}"

"$root/hack/redis-deps.sh"
"$root/hack/python-env.sh"
pytest=("$root/.venv/bin/pytest" -p no:cacheprovider)

has_tier() { [[ " $tiers " == *" $1 "* ]]; }
banner() { echo "== $1 == $(date -u +%H:%M:%S)"; }

# lint-imports checks that the package's layers import only downward.
"$root/.venv/bin/lint-imports" "$root/.importlinter" --no-cache >/dev/null \
    || "$root/.venv/bin/lint-imports" "$root/.importlinter" --no-cache

if has_tier unit; then
    banner unit
    "${pytest[@]}" tests/unit -q
fi
if has_tier redis; then
    banner redis
    "${pytest[@]}" tests/redis -q -m redis
fi
if has_tier cluster && [ -x "$root/hack/test-cluster.sh" ]; then
    banner cluster
    "$root/hack/test-cluster.sh"
fi
if has_tier integration && [ -d tests/integration ]; then
    banner integration
    "${pytest[@]}" tests/integration -q -m integration
fi
if has_tier e2e && [ -d tests/e2e ]; then
    banner e2e
    "${pytest[@]}" tests/e2e -q -m node
fi
