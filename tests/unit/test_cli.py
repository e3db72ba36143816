"""The secure-redis command line: render, redaction and errors."""

from __future__ import annotations

import base64
import binascii
import re

import pytest
import yaml

from secureredis import cli
from spec_inputs import EXAMPLES

EXAMPLE_IDS = [path.stem for path in EXAMPLES]


def render(capsys, *arguments: str) -> tuple[int, list[dict], str]:
    """Run ``secure-redis render`` and return the exit code, parsed objects and stderr."""
    code = cli.main(["render", *arguments])
    captured = capsys.readouterr()
    objects = [doc for doc in yaml.safe_load_all(captured.out) if doc] if code == 0 else []
    return code, objects, captured.err


def secrets_of(objects: list[dict]) -> list[dict]:
    return [obj for obj in objects if obj["kind"] == "Secret"]


@pytest.mark.parametrize("path", EXAMPLES, ids=EXAMPLE_IDS)
def test_render_example(capsys, path):
    code, objects, err = render(capsys, "-f", str(path))
    kinds = {obj["kind"] for obj in objects}

    assert code == 0
    assert err == ""
    assert {"ConfigMap", "Secret", "Service", "StatefulSet", "NetworkPolicy",
            "PodDisruptionBudget"} <= kinds


@pytest.mark.parametrize("path", EXAMPLES, ids=EXAMPLE_IDS)
def test_render_redacts_secrets(capsys, path):
    code, objects, _ = render(capsys, "-f", str(path))
    values = [value for secret in secrets_of(objects) for value in secret["data"].values()]

    assert code == 0
    assert values
    assert set(values) == {cli.REDACTED}


@pytest.mark.parametrize("path", EXAMPLES, ids=EXAMPLE_IDS)
def test_render_hides_private_keys(capsys, path):
    cli.main(["render", "-f", str(path)])
    out = capsys.readouterr().out
    has_key = "PRIVATE KEY" in out
    has_masterauth = re.search(r"^\s*masterauth ", out, re.MULTILINE) is not None

    assert not has_key
    assert not has_masterauth


@pytest.mark.parametrize("path", EXAMPLES, ids=EXAMPLE_IDS)
def test_show_secrets_base64(capsys, path):
    code, objects, _ = render(capsys, "-f", str(path), "--show-secrets")
    invalid = []
    for secret in secrets_of(objects):
        for key, value in secret["data"].items():
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, TypeError):
                invalid.append(f"{secret['metadata']['name']}/{key}")

    assert code == 0
    assert secrets_of(objects)
    assert invalid == []


def test_render_from_stdin(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", open(EXAMPLES[0], encoding="utf-8"))

    code, objects, _ = render(capsys, "-f", "-")

    assert code == 0
    assert objects


def test_render_operator_namespace(capsys):
    code, objects, _ = render(capsys, "-f", str(EXAMPLES[0]), "--operator-namespace", "ops")
    policy = next(obj for obj in objects if obj["kind"] == "NetworkPolicy")
    selectors = [peer.get("namespaceSelector") for rule in policy["spec"]["ingress"]
                 for peer in rule["from"]]

    assert code == 0
    assert {"matchLabels": {"kubernetes.io/metadata.name": "ops"}} in selectors


def test_invalid_file_names_field(capsys, tmp_path):
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "secureredis.io/v1alpha1",
        "kind": "SecureRedis",
        "metadata": {"name": "broken"},
        "spec": {"mode": "cluster", "cluster": {"shards": 2},
                 "acl": {"users": [{"name": "app", "rules": [">secretvalue"]}]}},
    }))

    code, _, err = render(capsys, "-f", str(manifest))
    leaked = "secretvalue" in err

    assert code == 2
    assert "spec.cluster.shards" in err
    assert "spec.acl.users[0].rules[0]" in err
    assert "broken" in err
    assert not leaked


def test_file_without_secure_redis(capsys, tmp_path):
    manifest = tmp_path / "other.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")

    code, _, err = render(capsys, "-f", str(manifest))

    assert code == 2
    assert "SecureRedis" in err


def test_version_command(capsys):
    code = cli.main(["version"])

    assert code == 0
    assert capsys.readouterr().out.strip() == cli.__version__
