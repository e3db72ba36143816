#!/usr/bin/env python3
"""Pack a root filesystem directory into an OCI image archive.

The archive is what `ctr images import` reads: an OCI image layout (an
`oci-layout` file, `index.json` and blobs) inside a tar file. The image has a
single uncompressed layer, because containerd unpacks it on import anyway and
compressing it would only spend CPU.

Usage:
    oci_archive.py --root DIR --name localhost/x/y:tag --out image.tar
        [--entrypoint JSON] [--cmd JSON] [--user UID:GID] [--env K=V ...]
        [--workdir DIR]
"""

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_layer(root: str, out_path: str) -> None:
    # GNU tar keeps ownership, modes, device nodes and hard links exactly as
    # the root has them; --sort and --mtime make the layer reproducible.
    command = [
        "tar", "--create", "--file", out_path, "--directory", root,
        "--numeric-owner", "--sort=name", "--mtime=@0", "--xattrs",
        "--exclude=./proc/*", "--exclude=./sys/*", "--exclude=./dev/*",
        ".",
    ]
    subprocess.run(command, check=True)


def add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def build(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(args.out))) as work:
        layer_path = os.path.join(work, "layer.tar")
        make_layer(args.root, layer_path)
        layer_digest = sha256_file(layer_path)
        layer_size = os.path.getsize(layer_path)

        config = {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] + args.env,
            },
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
            "history": [{"created_by": "hack/images.sh"}],
        }
        if args.entrypoint:
            config["config"]["Entrypoint"] = json.loads(args.entrypoint)
        if args.cmd:
            config["config"]["Cmd"] = json.loads(args.cmd)
        if args.user:
            config["config"]["User"] = args.user
        if args.workdir:
            config["config"]["WorkingDir"] = args.workdir
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_digest = hashlib.sha256(config_bytes).hexdigest()

        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{config_digest}",
                "size": len(config_bytes),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": f"sha256:{layer_digest}",
                "size": layer_size,
            }],
        }
        manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
        manifest_digest = hashlib.sha256(manifest_bytes).hexdigest()

        # containerd names the imported image after this annotation.
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": f"sha256:{manifest_digest}",
                "size": len(manifest_bytes),
                "annotations": {
                    "io.containerd.image.name": args.name,
                    "org.opencontainers.image.ref.name": args.name.rsplit(":", 1)[-1],
                },
            }],
        }

        partial = args.out + ".partial"
        with tarfile.open(partial, "w") as archive:
            add_bytes(archive, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
            add_bytes(archive, "index.json", json.dumps(index, sort_keys=True).encode())
            add_bytes(archive, f"blobs/sha256/{config_digest}", config_bytes)
            add_bytes(archive, f"blobs/sha256/{manifest_digest}", manifest_bytes)
            archive.add(layer_path, arcname=f"blobs/sha256/{layer_digest}")
        os.replace(partial, args.out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="root filesystem directory")
    parser.add_argument("--name", required=True, help="image reference, e.g. localhost/secure-redis/redis:7.0")
    parser.add_argument("--out", required=True, help="archive file to write")
    parser.add_argument("--entrypoint", help="JSON list")
    parser.add_argument("--cmd", help="JSON list")
    parser.add_argument("--user", help="UID:GID the container runs as")
    parser.add_argument("--workdir")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE, repeatable")
    args = parser.parse_args()
    if not os.path.isdir(args.root):
        print(f"oci_archive.py: root {args.root!r} is not a directory", file=sys.stderr)
        return 1
    build(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
