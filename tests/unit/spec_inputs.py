"""Inputs the unit tests share: SecureRedis objects, the examples and a fixed clock."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import yaml

from secureredis import API_VERSION, KIND, material, spec

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "manifests" / "examples").glob("*.yaml"))
CRD_PATH = REPO / "crds" / "secureredis.yaml"

# Certificates store whole seconds, so the clock has none to lose.
NOW = datetime(2030, 1, 15, 12, 0, 0, tzinfo=timezone.utc)


def secure_redis(spec_fields: dict | None = None, *, name: str = "demo",
                 namespace: str = "apps", uid: str | None = None) -> dict:
    """Build a SecureRedis object as a user would write it."""
    metadata = {"name": name, "namespace": namespace}
    if uid:
        metadata["uid"] = uid
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata,
            "spec": dict(spec_fields or {})}


def user(name: str, *rules: str, admin: bool = False) -> dict:
    return {"name": name, "rules": list(rules), "admin": admin}


def load_example(path: Path) -> dict:
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert len(documents) == 1
    return documents[0]


class Quiet(tuple):
    """A tuple whose repr names its SecureRedis and shows no secret in a failure report."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of SecureRedis {self[0].name} ({self[0].mode})>"


def build(spec_fields: dict | None = None, **metadata) -> Quiet:
    """Load a spec and return it with freshly generated material, as (sr, material)."""
    sr = spec.load(secure_redis(spec_fields, **metadata))
    return Quiet((sr, material.ensure(sr, None, now=NOW)))
