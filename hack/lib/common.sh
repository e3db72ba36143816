# shellcheck shell=bash
# Shared settings for the cluster scripts in hack/. Source it; do not run it.
#
# SRO_CACHE  built binaries and image tarballs, kept between runs
#            (default /var/cache/secure-redis-operator). It lives outside the
#            clone so a fresh clone, as CI makes, reuses earlier builds.
# SRO_RUN    state of running clusters: certificates, logs, sockets
#            (default /run/secure-redis-operator).

SRO_HACK=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRO_ROOT=$(cd "$SRO_HACK/.." && pwd)
# shellcheck source=hack/versions.env
source "$SRO_HACK/versions.env"

SRO_CACHE=${SRO_CACHE:-/var/cache/secure-redis-operator}
SRO_RUN=${SRO_RUN:-/run/secure-redis-operator}

K8S_DIR=$SRO_CACHE/kubernetes-$KUBERNETES_VERSION
ETCD_DIR=$SRO_CACHE/etcd-$ETCD_VERSION
COREDNS_DIR=$SRO_CACHE/coredns-$COREDNS_VERSION
KUBE_ROUTER_DIR=$SRO_CACHE/kube-router-$KUBE_ROUTER_VERSION
PAUSE_DIR=$SRO_CACHE/pause-$PAUSE_VERSION
IMAGES_DIR=$SRO_CACHE/images-$IMAGE_RECIPE_VERSION

sro_log() {
  printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

sro_die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

sro_require_root() {
  [[ $(id -u) -eq 0 ]] || sro_die "$1 must run as root: it starts containerd, kubelet and changes iptables"
}

# sro_envtest_assets prints KUBEBUILDER_ASSETS when it holds the binaries that
# the control-plane tier can take from it (etcd and kube-apiserver).
sro_envtest_assets() {
  local dir=${KUBEBUILDER_ASSETS:-}
  if [[ -n $dir && -x $dir/etcd && -x $dir/kube-apiserver ]]; then
    printf '%s\n' "$dir"
  fi
}
