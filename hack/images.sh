#!/usr/bin/env bash
# Build the cluster's container images from Debian packages and our own Go
# binaries, without a registry, and import them into a running containerd.
#
#   images.sh build                 build the image archives that are missing
#   images.sh import SOCKET         build, then import every image into the
#                                   containerd listening on SOCKET (namespace k8s.io)
#   images.sh list                  print the image names
#
# Archives are cached as $SRO_CACHE/images-<recipe>/<name>-<tag>.tar. Each
# Debian root starts from `debootstrap --variant=minbase`, gets its packages
# with apt-get inside a chroot, loses setuid/setgid bits, apt's lists and the
# docs, and runs as uid 999. Redis 8.0 and Valkey 8.1 come from trixie, which
# is only ever added to these build roots, never to the host's apt sources.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

mirror=${SRO_DEBIAN_MIRROR:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
debs_cache=$SRO_CACHE/debootstrap-debs
roots=$SRO_CACHE/rootfs
# The user each image runs as. build-operator-image.sh, which sources this
# file for its functions, sets its own before calling debian_root.
service_uid=999
service_user=redis
service_home=/var/lib/redis

archive_path() {
  local name=${1#localhost/secure-redis/}
  printf '%s/%s.tar\n' "$IMAGES_DIR" "${name//:/-}"
}

# base_root SUITE: print the path of a cached minbase root for SUITE,
# creating it first if needed.
base_root() {
  local suite=$1
  local dir=$roots/$suite-minbase
  if [[ ! -f $dir/.complete ]]; then
    sro_log "images: debootstrap $suite (minbase) into $dir"
    rm -rf "$dir"
    mkdir -p "$dir" "$debs_cache"
    if ! debootstrap --variant=minbase --keyring="$keyring" --cache-dir="$debs_cache" \
      "$suite" "$dir" "$mirror" >"$SRO_CACHE/logs/debootstrap-$suite.log" 2>&1; then
      tail -n 20 "$SRO_CACHE/logs/debootstrap-$suite.log" >&2
      sro_die "debootstrap $suite failed; see $SRO_CACHE/logs/debootstrap-$suite.log"
    fi
    touch "$dir/.complete"
  fi
  printf '%s\n' "$dir"
}

# debian_root SUITE WORKDIR PACKAGE...: copy the minbase root of SUITE to
# WORKDIR and install the packages into it.
debian_root() {
  local suite=$1 work=$2 base
  shift 2
  base=$(base_root "$suite")
  rm -rf "$work"
  cp -a "$base" "$work"
  rm -f "$work/.complete"

  # Maintainer scripts must not start daemons inside the build root.
  printf '#!/bin/sh\nexit 101\n' >"$work/usr/sbin/policy-rc.d"
  chmod 755 "$work/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$work/etc/resolv.conf"
  # The service user gets a fixed uid before the packages create it with a
  # dynamic one, so pods can name it in runAsUser.
  chroot "$work" groupadd --system --gid "$service_uid" "$service_user"
  chroot "$work" useradd --system --uid "$service_uid" --gid "$service_uid" \
    --home-dir "$service_home" --shell /usr/sbin/nologin "$service_user"

  local log=$SRO_CACHE/logs/image-$(basename "$work").log
  if ! chroot "$work" /bin/sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $*" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    sro_die "installing $* into the $suite build root failed; see $log"
  fi

  chroot "$work" apt-get clean
  rm -rf "$work"/var/lib/apt/lists/* "$work"/usr/share/doc/* "$work"/usr/share/man/* \
    "$work"/usr/share/locale/* "$work"/var/log/* "$work/usr/sbin/policy-rc.d"
  : >"$work/etc/resolv.conf"
  # No setuid or setgid program may raise a container's privileges.
  find "$work" -xdev -type f -perm /6000 -exec chmod ug-s {} +
}

pack() {
  local root=$1 name=$2 out
  shift 2
  out=$(archive_path "$name")
  mkdir -p "$IMAGES_DIR"
  python3 "$SRO_HACK/lib/oci_archive.py" --root "$root" --name "$name" --out "$out" "$@"
  sro_log "images: wrote $name to $out ($(du -h "$out" | cut -f1))"
}

build_static_image() {
  local name=$1 binary=$2 user=$3 work
  [[ -x $binary ]] || sro_die "$binary is missing; run hack/build-k8s.sh first"
  work=$(mktemp -d "$SRO_CACHE/rootfs/static.XXXXXX")
  install -D -m 0755 "$binary" "$work/$(basename "$binary")"
  mkdir -p "$work/etc" "$work/tmp"
  pack "$work" "$name" --entrypoint "[\"/$(basename "$binary")\"]" --user "$user"
  rm -rf "$work"
}

build_redis_image() {
  local suite=$1 name=$2 server=$3 packages=$4 work
  work=$roots/work-${name##*/}
  work=${work//:/-}
  debian_root "$suite" "$work" $packages
  mkdir -p "$work/data"
  chown "$service_uid:$service_uid" "$work/data"
  pack "$work" "$name" --entrypoint "[\"$server\"]" --user "$service_uid:$service_uid" --workdir /data
  rm -rf "$work"
}

build_client_image() {
  local work=$roots/work-client
  debian_root "$IMAGE_DEBIAN_OLD" "$work" redis-tools python3 python3-redis ca-certificates
  pack "$work" "$CLIENT_IMAGE" --cmd '["sleep", "infinity"]' --user "$service_uid:$service_uid"
  rm -rf "$work"
}

build_all() {
  mkdir -p "$IMAGES_DIR" "$roots" "$SRO_CACHE/logs"
  exec 8>"$SRO_CACHE/.images.lock"
  flock 8
  [[ -f $(archive_path "$PAUSE_IMAGE") ]] || build_static_image "$PAUSE_IMAGE" "$PAUSE_DIR/bin/pause" 65535:65535
  [[ -f $(archive_path "$COREDNS_IMAGE") ]] || build_static_image "$COREDNS_IMAGE" "$COREDNS_DIR/bin/coredns" 65532:65532
  [[ -f $(archive_path "$REDIS70_IMAGE") ]] \
    || build_redis_image "$IMAGE_DEBIAN_OLD" "$REDIS70_IMAGE" redis-server "redis-server redis-tools"
  [[ -f $(archive_path "$REDIS80_IMAGE") ]] \
    || build_redis_image "$IMAGE_DEBIAN_NEW" "$REDIS80_IMAGE" redis-server "redis-server redis-tools"
  [[ -f $(archive_path "$VALKEY81_IMAGE") ]] \
    || build_redis_image "$IMAGE_DEBIAN_NEW" "$VALKEY81_IMAGE" valkey-server "valkey-server valkey-tools"
  [[ -f $(archive_path "$CLIENT_IMAGE") ]] || build_client_image
  flock -u 8
}

all_images() {
  printf '%s\n' "$PAUSE_IMAGE" "$COREDNS_IMAGE" "$REDIS70_IMAGE" "$REDIS80_IMAGE" "$VALKEY81_IMAGE" "$CLIENT_IMAGE"
}

# import_all SOCKET: import each image whose archive containerd has not
# imported yet. containerd's root is cached between runs, so a stamp per
# image (the archive's size and time) tells a rebuilt archive from the
# one already imported.
import_all() {
  local socket=$1 name present archive stamp stamps=$SRO_CACHE/containerd-root/sro-imports
  [[ -S $socket ]] || sro_die "no containerd socket at $socket; start the node tier with hack/cluster.sh up --tier node"
  mkdir -p "$stamps"
  present=$(ctr --address "$socket" -n k8s.io images list -q)
  for name in $(all_images); do
    archive=$(archive_path "$name")
    stamp=$stamps/$(basename "$archive")
    if grep -qxF "$name" <<<"$present" && [[ $(cat "$stamp" 2>/dev/null) == "$(stat -c '%s %Y' "$archive")" ]]; then
      continue
    fi
    sro_log "images: importing $name"
    ctr --address "$socket" -n k8s.io images import "$archive" >/dev/null \
      || sro_die "ctr images import of $archive failed; delete the archive to rebuild it"
    stat -c '%s %Y' "$archive" >"$stamp"
  done
}

# Sourcing this file only defines the functions above.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  sro_require_root "images.sh"
  case ${1:-} in
    build) build_all ;;
    import) build_all; import_all "${2:?images.sh import needs the containerd socket path}" ;;
    list) all_images ;;
    *) sro_die "usage: images.sh build | import SOCKET | list" ;;
  esac
fi
