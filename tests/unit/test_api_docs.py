"""docs/api.md is generated from the CRD and must match it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "hack" / "gen-api-docs.py"


def spec_paths(schema: dict, path: str) -> list[str]:
    paths = [path]
    for name, field in (schema.get("properties") or {}).items():
        paths += spec_paths(field, f"{path}.{name}")
    for name, field in ((schema.get("items") or {}).get("properties") or {}).items():
        paths += spec_paths(field, f"{path}[].{name}")
    return paths


def test_api_docs_up_to_date():
    result = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True,
                            text=True, timeout=60, check=False)

    assert result.returncode == 0, result.stderr


def test_every_field_documented():
    crd = yaml.safe_load((REPO / "crds" / "secureredis.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    text = (REPO / "docs" / "api.md").read_text()

    for section in ("spec", "status"):
        for path in spec_paths(schema[section], section)[1:]:
            assert f"| `{path}` |" in text, path
