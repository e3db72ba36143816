#!/usr/bin/env bash
# Install the Debian packages that the local cluster needs. Safe to run again:
# packages already present are left alone and apt is not even updated.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/versions.env
source "$here/versions.env"

if [[ $(id -u) -ne 0 ]]; then
  echo "deps.sh: must run as root (it installs Debian packages with apt-get)" >&2
  exit 1
fi

read -r -a wanted <<<"$DEBIAN_PACKAGES"
missing=()
for pkg in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]})); then
  echo "deps.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get update -qq; then
    echo "deps.sh: apt-get update failed; check the apt sources and the network to the Debian mirror" >&2
    exit 1
  fi
  # --no-install-recommends keeps out services the cluster does not use.
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
    echo "deps.sh: apt-get install ${missing[*]} failed; see apt's output above" >&2
    exit 1
  fi
fi

# The Debian containerd package starts its own daemon where systemd runs.
# The cluster runs a separate containerd with its own socket and root, so the
# system one is harmless. The note keeps anyone from mistaking one for the other.
if [[ -S /run/containerd/containerd.sock ]]; then
  echo "deps.sh: note: the system containerd is running on /run/containerd/containerd.sock; the cluster does not use it"
fi

check_version() {
  local pkg=$1 expected=$2 actual
  actual=$(dpkg-query -W -f='${Version}' "$pkg")
  if [[ $actual != "$expected" ]]; then
    echo "deps.sh: warning: $pkg is $actual, tested with $expected (hack/versions.env)" >&2
  fi
}
check_version containerd "$DEBIAN_CONTAINERD_VERSION"
check_version runc "$DEBIAN_RUNC_VERSION"
check_version containernetworking-plugins "$DEBIAN_CNI_PLUGINS_VERSION"
