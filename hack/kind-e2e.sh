#!/usr/bin/env bash
# Run the end-to-end suites (tests/cluster and tests/e2e, marker "node") on a
# kind cluster, for developers who have Docker and kind instead of the local
# node tier of hack/cluster.sh.
#
# NOT run in this repository's CI: CI machines have no Docker engine and no
# registry, so CI uses hack/cluster.sh. Treat this script as a convenience
# that may drift; the local node tier is the reference.
#
# Needs: docker, kind (v0.24 or newer, whose kindnet enforces NetworkPolicy),
# root for building the images with debootstrap (hack/images.sh), and the
# project's virtual environment (hack/python-env.sh).
#
# Environment:
#   SRO_KIND_CLUSTER   kind cluster name (default secure-redis-e2e)
#   SRO_KIND_KEEP=1    keep the cluster after the run
#   KUBECTL            kubectl binary (default: kubectl on PATH)
# Extra arguments go to pytest.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

cluster=${SRO_KIND_CLUSTER:-secure-redis-e2e}
kubectl_bin=${KUBECTL:-kubectl}
pytest=$SRO_ROOT/.venv/bin/pytest

for tool in docker kind "$kubectl_bin"; do
  command -v "$tool" >/dev/null || sro_die "$tool is not installed; kind-e2e.sh needs docker, kind and kubectl"
done
[[ -x $pytest ]] || sro_die "$pytest not found; create the virtual environment with hack/python-env.sh"

# The Redis and client images are the same archives the local node tier
# imports; pause and CoreDNS come with kind.
"$SRO_HACK/images.sh" build

kubeconfig=$(mktemp)
cleanup() {
  rm -f "$kubeconfig"
  if [[ ${SRO_KIND_KEEP:-0} != 1 ]]; then
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

if ! kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  kind create cluster --name "$cluster" --wait 120s
fi
kind get kubeconfig --name "$cluster" >"$kubeconfig"

for image in "$REDIS70_IMAGE" "$REDIS80_IMAGE" "$VALKEY81_IMAGE" "$CLIENT_IMAGE"; do
  archive=$IMAGES_DIR/${image#localhost/secure-redis/}
  kind load image-archive --name "$cluster" "${archive//:/-}.tar"
done

cd "$SRO_ROOT"
suites=(tests/cluster)
[[ ! -d tests/e2e ]] || suites+=(tests/e2e)
SRO_KUBECONFIG=$kubeconfig SRO_KUBECTL=$(command -v "$kubectl_bin") \
  "$pytest" -p no:cacheprovider "${suites[@]}" -q -m node "$@"
