"""The Dockerfile and hack/build-operator-image.sh describe the same image.

No Docker engine runs here, so the Dockerfile is checked by reading it; the
local build is what the end-to-end tier runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from secureredis import __version__

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()
BUILD_SCRIPT = (REPO / "hack" / "build-operator-image.sh").read_text()
LOCK = (REPO / "requirements" / "operator.txt").read_text()
DEPLOYMENT = next(doc for doc in yaml.safe_load_all((REPO / "manifests/base/deployment.yaml")
                                                    .read_text()) if doc)


def test_base_pinned_to_patch_release():
    image = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.MULTILINE).group(1)

    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image)
    assert re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE) == ["${PYTHON_IMAGE}"] * 2


def test_dependencies_installed_with_hashes():
    for recipe in (DOCKERFILE, BUILD_SCRIPT):
        assert "--require-hashes -r" in recipe
        assert "operator.txt" in recipe
        assert "operator-build.txt" in recipe


def test_every_pin_has_hash():
    entries = re.findall(r"^(\S+)==(\S+) \\\n\s+--hash=sha256:([0-9a-f]{64})$", LOCK, re.MULTILINE)
    names = {name.lower().replace("_", "-") for name, _, _ in entries}

    assert len(entries) == LOCK.count("==")
    assert {"kopf", "kubernetes", "redis", "cryptography", "pyyaml", "prometheus-client"} <= names


def test_same_user_everywhere():
    pod = DEPLOYMENT["spec"]["template"]["spec"]["securityContext"]

    assert "USER 65532:65532" in DOCKERFILE
    assert "service_uid=65532" in BUILD_SCRIPT
    assert pod["runAsUser"] == 65532
    assert pod["runAsGroup"] == 65532


def test_same_entrypoint():
    assert 'ENTRYPOINT ["/usr/local/bin/secure-redis"]' in DOCKERFILE
    assert "--entrypoint '[\"/usr/local/bin/secure-redis\"]'" in BUILD_SCRIPT


def test_image_name_follows_version():
    assert f"localhost/secure-redis/operator:{__version__}" in DOCKERFILE
    assert "OPERATOR_IMAGE=localhost/secure-redis/operator:$operator_version" in BUILD_SCRIPT
