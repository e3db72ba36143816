#!/usr/bin/env bash
# Run the smoke tests of the local Kubernetes tiers (tests/cluster):
# install the Debian packages, build what is not cached, then run pytest.
# The control-plane tests start and stop their own tier; the node tests
# start the node tier unless one already runs, and stop what they started.
#
# Exits non-zero when any step or test fails. Needs root and the project's
# virtual environment (hack/python-env.sh creates it).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
sro_require_root "test-cluster.sh"

pytest=${SRO_PYTEST:-$SRO_ROOT/.venv/bin/pytest}
[[ -x $pytest ]] || sro_die "$pytest not found; create the virtual environment with hack/python-env.sh"

"$SRO_HACK/deps.sh"
"$SRO_HACK/build-k8s.sh" --tier node
"$SRO_HACK/images.sh" build

cd "$SRO_ROOT"
# -p no:cacheprovider: the clone may be read-only for everyone but CI.
"$pytest" -p no:cacheprovider tests/cluster -q -m "integration or node" "$@"
