#!/usr/bin/env bash
# Build the operator's container image without a Docker engine or a
# registry, and import it into a containerd. It is the image the Dockerfile
# describes: Debian bookworm's Python 3.11, a virtual environment with the
# package and the pinned dependencies of requirements/operator.txt, uid 65532.
#
#   build-operator-image.sh [build]         build the archive unless it is cached;
#                                           print its path
#   build-operator-image.sh import SOCKET   build, then import the image into the
#                                           containerd at SOCKET (namespace k8s.io)
#   build-operator-image.sh lock            pin the dependencies anew, with hashes,
#                                           in requirements/operator*.txt
#   build-operator-image.sh name            print the image reference
#
# The archive is $SRO_CACHE/operator-images/operator-<version>-<hash>.tar,
# where <hash> covers the package sources, the lock files and this recipe,
# so a source change builds a new archive and an unchanged tree reuses it.
# The build root comes from hack/images.sh (debootstrap minbase, packages
# from Debian); pip inside it installs from PyPI, accepting only the hashes
# in the lock files.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/images.sh"

operator_version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$SRO_ROOT/operator/secureredis/__init__.py")
[[ -n $operator_version ]] || sro_die "no __version__ in operator/secureredis/__init__.py"
OPERATOR_IMAGE=localhost/secure-redis/operator:$operator_version
runtime_lock=$SRO_ROOT/requirements/operator.txt
build_lock=$SRO_ROOT/requirements/operator-build.txt
venv=/opt/secure-redis
archives=$SRO_CACHE/operator-images

# The operator runs as the conventional "nonroot" user of minimal images.
service_uid=65532
service_user=nonroot
service_home=/home/nonroot

# source_files prints every file the image is built from, sorted.
source_files() {
  (
    cd "$SRO_ROOT"
    printf '%s\n' pyproject.toml README.md requirements/operator.txt requirements/operator-build.txt \
      hack/build-operator-image.sh hack/images.sh hack/lib/oci_archive.py hack/lib/common.sh hack/versions.env
    find operator/secureredis -type f ! -name '*.pyc' ! -path '*/__pycache__/*'
  ) | LC_ALL=C sort
}

source_hash() {
  (cd "$SRO_ROOT" && source_files | xargs sha256sum | sha256sum | cut -c1-16)
}

archive_file() {
  printf '%s/operator-%s-%s.tar\n' "$archives" "$operator_version" "$(source_hash)"
}

# copy_sources ROOT: copy what pip needs to build the package into ROOT/tmp/src.
copy_sources() {
  local root=$1
  mkdir -p "$root/tmp/src"
  cp "$SRO_ROOT/pyproject.toml" "$SRO_ROOT/README.md" "$root/tmp/src/"
  tar -C "$SRO_ROOT" --exclude='__pycache__' --exclude='*.pyc' --exclude='*.egg-info' \
    -cf - operator | tar -C "$root/tmp/src" -xf -
  chmod -R a+rX "$root/tmp/src"
}

# in_root ROOT COMMAND: run a shell command in the build root with the
# host's DNS and the CA bundle the host's pip trusts (PIP_CERT, else the
# system bundle), since a machine may reach PyPI through a proxy with its
# own CA. Both are removed again and never reach the image.
in_root() {
  local root=$1 log=$SRO_CACHE/logs/operator-image.log
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$root/tmp/host-ca.crt"
  # A clean environment: the host's pip and TLS variables name host paths.
  if ! chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 PIP_CERT=/tmp/host-ca.crt REQUESTS_CA_BUNDLE=/tmp/host-ca.crt \
    SSL_CERT_FILE=/tmp/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
    /bin/sh -ec "$2" >>"$log" 2>&1; then
    tail -n 30 "$log" >&2
    sro_die "building the operator image failed; see $log"
  fi
  rm -f "$root/tmp/host-ca.crt"
  : >"$root/etc/resolv.conf"
}

build_image() {
  local out=$1 root=$roots/work-operator
  sro_log "operator image: building $OPERATOR_IMAGE"
  mkdir -p "$archives" "$roots" "$SRO_CACHE/logs"
  : >"$SRO_CACHE/logs/operator-image.log"
  debian_root "$IMAGE_DEBIAN_OLD" "$root" python3 python3-venv ca-certificates
  copy_sources "$root"
  cp "$runtime_lock" "$root/tmp/operator.txt"
  cp "$build_lock" "$root/tmp/operator-build.txt"

  # The wheel is built in a throwaway environment with pinned setuptools, so
  # neither the build tools nor pip end up in the image.
  in_root "$root" "
    python3 -m venv /tmp/build-venv
    /tmp/build-venv/bin/pip install --quiet --no-cache-dir --require-hashes -r /tmp/operator-build.txt
    /tmp/build-venv/bin/pip wheel --quiet --no-cache-dir --no-deps --no-build-isolation -w /tmp/dist /tmp/src
    python3 -m venv $venv
    $venv/bin/pip install --quiet --no-cache-dir --require-hashes -r /tmp/operator.txt
    $venv/bin/pip install --quiet --no-cache-dir --no-deps /tmp/dist/*.whl
    $venv/bin/pip check
    $venv/bin/pip uninstall --quiet --yes pip setuptools
    ln -s $venv/bin/secure-redis /usr/local/bin/secure-redis
    /usr/local/bin/secure-redis version
    $venv/bin/python -c 'import secureredis.handlers, secureredis.metrics'
  "
  rm -rf "$root"/usr/share/python-wheels "$root"/root/.cache
  find "$root/tmp" -mindepth 1 -delete
  chmod 1777 "$root/tmp"

  python3 "$SRO_HACK/lib/oci_archive.py" --root "$root" --name "$OPERATOR_IMAGE" --out "$out" \
    --entrypoint '["/usr/local/bin/secure-redis"]' --cmd '["run"]' \
    --user "$service_uid:$service_uid" --workdir / \
    --env PYTHONDONTWRITEBYTECODE=1 --env PYTHONUNBUFFERED=1
  rm -rf "$root"
  sro_log "operator image: wrote $OPERATOR_IMAGE to $out ($(du -h "$out" | cut -f1))"
  # Archives of older source trees are never used again.
  find "$archives" -maxdepth 1 -name 'operator-*.tar' ! -name "$(basename "$out")" -delete
}

build() {
  local out
  out=$(archive_file)
  mkdir -p "$SRO_CACHE"
  exec 9>"$SRO_CACHE/.operator-image.lock"
  flock 9
  [[ -f $out ]] || build_image "$out"
  flock -u 9
  printf '%s\n' "$out"
}

import_image() {
  local socket=$1 out
  [[ -S $socket ]] || sro_die "no containerd socket at $socket; start the node tier with hack/cluster.sh up --tier node"
  out=$(build)
  sro_log "operator image: importing $OPERATOR_IMAGE into $socket"
  ctr --address "$socket" -n k8s.io images import "$out" >/dev/null \
    || sro_die "ctr images import of $out failed; delete the archive to rebuild it"
}

# lock: resolve the dependencies in pyproject.toml inside a bookworm root,
# the interpreter and platform of the image, and write each distribution
# with the sha256 of the file pip chose.
lock() {
  local root=$roots/work-operator-lock deps
  mkdir -p "$roots" "$SRO_CACHE/logs"
  : >"$SRO_CACHE/logs/operator-image.log"
  deps=$(python3 -c 'import tomllib, sys; print(" ".join(repr(d) for d in tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' "$SRO_ROOT/pyproject.toml")
  debian_root "$IMAGE_DEBIAN_OLD" "$root" python3 python3-venv ca-certificates
  in_root "$root" "
    python3 -m venv /tmp/lock-venv
    /tmp/lock-venv/bin/pip install --quiet --upgrade --no-cache-dir pip
    /tmp/lock-venv/bin/pip install --quiet --dry-run --ignore-installed --no-cache-dir --report /tmp/runtime.json $deps
    /tmp/lock-venv/bin/pip install --quiet --dry-run --ignore-installed --no-cache-dir --report /tmp/build.json 'setuptools>=68' wheel
  "
  write_lock "$root/tmp/runtime.json" "$runtime_lock" "the operator's runtime dependencies"
  write_lock "$root/tmp/build.json" "$build_lock" "the tools that build the operator's wheel"
  rm -rf "$root"
}

# write_lock REPORT OUT WHAT: turn a pip installation report into a
# requirements file with hashes.
write_lock() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
report, out, what = sys.argv[1:]
lines = [f"# Pins of {what}, with the sha256 of the file pip selects for",
         "# CPython 3.11 on Debian bookworm (x86_64). Written by",
         "# hack/build-operator-image.sh lock; do not edit by hand.", ""]
for item in sorted(json.load(open(report))["install"], key=lambda i: i["metadata"]["name"].lower()):
    name, version = item["metadata"]["name"], item["metadata"]["version"]
    digest = item["download_info"]["archive_info"]["hashes"]["sha256"]
    lines.append(f"{name}=={version} \\\n    --hash=sha256:{digest}")
open(out, "w").write("\n".join(lines) + "\n")
PY
  sro_log "operator image: wrote $2"
}

case ${1:-build} in
  build) sro_require_root "build-operator-image.sh"; build ;;
  import) sro_require_root "build-operator-image.sh"; import_image "${2:?import needs the containerd socket path}" ;;
  lock) sro_require_root "build-operator-image.sh"; lock ;;
  name) printf '%s\n' "$OPERATOR_IMAGE" ;;
  *) sro_die "usage: build-operator-image.sh [build] | import SOCKET | lock | name" ;;
esac
