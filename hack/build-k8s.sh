#!/usr/bin/env bash
# Build the local cluster's binaries from the Go module proxy into the cache:
#
#   $SRO_CACHE/kubernetes-<version>/bin/  k8s-multicall and one symlink per
#                                         component (kube-apiserver, kubelet, ...)
#   $SRO_CACHE/etcd-<version>/bin/etcd
#   $SRO_CACHE/coredns-<version>/bin/coredns
#   $SRO_CACHE/kube-router-<version>/bin/kube-router
#   $SRO_CACHE/pause-<version>/bin/pause
#
# A component whose directory is complete is skipped, so a second run costs
# seconds. Usage: build-k8s.sh [--tier control-plane|node]  (default: node)
#
# With KUBEBUILDER_ASSETS pointing at envtest binaries (etcd and
# kube-apiserver), the control-plane tier takes etcd from there and skips
# building it. The controller manager is not part of envtest, so the
# Kubernetes binary is still built.

# The whole script is one block, so bash parses it completely before
# running it: editing the file while it runs cannot change a running call.
{
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

tier=node
while (($#)); do
  case $1 in
    --tier) tier=${2:?--tier needs control-plane or node}; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) sro_die "build-k8s.sh: unknown argument '$1' (expected --tier control-plane|node)" ;;
  esac
done
[[ $tier == control-plane || $tier == node ]] || sro_die "build-k8s.sh: --tier must be control-plane or node, not '$tier'"

command -v go >/dev/null || sro_die "build-k8s.sh: Go is not installed; install Go 1.25 or newer"

# Builds share two cores with everything else on a small machine: run them at
# low priority, two packages at a time. GOTOOLCHAIN=local keeps the Go that is
# installed instead of downloading the toolchain a module requests.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
go_build=(nice -n 10 go build -p 2 -ldflags=-s\ -w)

mkdir -p "$SRO_CACHE/logs"
exec 9>"$SRO_CACHE/.build.lock"
if ! flock -n 9; then
  sro_log "another build-k8s.sh is running; waiting for it"
  flock 9
fi

# build_component NAME DIR BINARY BUILD_COMMAND...: run the command in a
# temporary directory unless DIR/bin/BINARY exists, then move the result in
# place so an interrupted build never leaves a half-written binary behind.
build_component() {
  local name=$1 dir=$2 binary=$3
  shift 3
  if [[ -x $dir/bin/$binary ]]; then
    sro_log "$name: cached in $dir"
    return
  fi
  local log=$SRO_CACHE/logs/build-$name.log start=$SECONDS
  sro_log "$name: building (log: $log)"
  mkdir -p "$dir/bin"
  if ! "$@" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    sro_die "building $name failed; the full log is $log"
  fi
  mv -f "$dir/bin/$binary.tmp" "$dir/bin/$binary"
  sro_log "$name: built in $((SECONDS - start)) s"
}

# install_module DIR BINARY PACKAGE@VERSION: `go install` a module straight
# from the proxy into DIR/bin/BINARY.tmp (go install has no -o flag).
install_module() {
  local dir=$1 binary=$2 package=$3 gobin
  gobin=$(mktemp -d)
  GOBIN=$gobin nice -n 10 go install -p 2 -ldflags="-s -w" "$package"
  mv "$gobin/$binary" "$dir/bin/$binary.tmp"
  rm -rf "$gobin"
}

check_pin() {
  local gomod=$1 module=$2 version=$3
  grep -Eq "^[[:space:]]*(require )?$module $version\$" "$gomod" \
    || sro_die "$gomod does not require $module $version, the version in hack/versions.env; update both together"
}

check_pin "$SRO_HACK/k8s-multicall/go.mod" k8s.io/kubernetes "$KUBERNETES_VERSION"
check_pin "$SRO_HACK/etcd-server/go.mod" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
grep -q "k8s.io/api => k8s.io/api $KUBERNETES_STAGING_VERSION" "$SRO_HACK/k8s-multicall/go.mod" \
  || sro_die "hack/k8s-multicall/go.mod does not replace the staging modules with $KUBERNETES_STAGING_VERSION"

# Without these the binaries call themselves v0.0.0-master, which kubectl
# version checks, node status and clients that compare versions would see.
minor=${KUBERNETES_VERSION#v1.}
minor=${minor%%.*}
version_flags=
for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_flags+=" -X $package.gitVersion=$KUBERNETES_VERSION -X $package.gitMajor=1"
  version_flags+=" -X $package.gitMinor=$minor -X $package.gitTreeState=clean"
  version_flags+=" -X $package.buildDate=1970-01-01T00:00:00Z"
done
build_component kubernetes "$K8S_DIR" k8s-multicall \
  env -C "$SRO_HACK/k8s-multicall" nice -n 10 go build -p 2 -ldflags="-s -w$version_flags" \
  -o "$K8S_DIR/bin/k8s-multicall.tmp" .
for component in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  ln -sfn k8s-multicall "$K8S_DIR/bin/$component"
done

if [[ $tier == node || -z $(sro_envtest_assets) ]]; then
  build_component etcd "$ETCD_DIR" etcd \
    env -C "$SRO_HACK/etcd-server" "${go_build[@]}" -o "$ETCD_DIR/bin/etcd.tmp" .
else
  sro_log "etcd: using $(sro_envtest_assets)/etcd from KUBEBUILDER_ASSETS"
fi

if [[ $tier == node ]]; then
  # CoreDNS and kube-router carry no replace directives, so the proxy's
  # module can be built as it is, with its own go.sum.
  build_component coredns "$COREDNS_DIR" coredns \
    install_module "$COREDNS_DIR" coredns "github.com/coredns/coredns@$COREDNS_VERSION"
  build_component kube-router "$KUBE_ROUTER_DIR" kube-router \
    install_module "$KUBE_ROUTER_DIR" kube-router \
    "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION"
  build_component pause "$PAUSE_DIR" pause \
    env -C "$SRO_HACK/pause" "${go_build[@]}" -o "$PAUSE_DIR/bin/pause.tmp" .
fi
exit
}
