"""The control-plane tier: start and stop from Python, and CRD admission."""

import json
import uuid

import pytest

from support import cluster as clusters

pytestmark = pytest.mark.integration

# A CRD of the tests' own with an OpenAPI schema and a CEL rule, so both
# kinds of admission-time validation are exercised.
WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.smoke.secureredis.io"},
    "spec": {
        "group": "smoke.secureredis.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [{
            "name": "v1",
            "served": True,
            "storage": True,
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {
                    "type": "object",
                    "required": ["size"],
                    "properties": {
                        "size": {"type": "integer", "minimum": 1, "maximum": 10},
                        "mode": {"type": "string", "enum": ["small", "large"], "default": "small"},
                    },
                    "x-kubernetes-validations": [{
                        "rule": "self.mode != 'small' || self.size <= 3",
                        "message": "mode small allows size 3 at most",
                        "fieldPath": ".size",
                    }],
                }},
            }},
        }],
    },
}


def widget(name, **spec):
    return {"apiVersion": "smoke.secureredis.io/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


@pytest.fixture(scope="module")
def widget_crd(control_plane):
    control_plane.apply(WIDGET_CRD)
    control_plane.kubectl("wait", "--for=condition=Established", "crd/widgets.smoke.secureredis.io", "--timeout=60s")
    yield
    control_plane.kubectl("delete", "crd", "widgets.smoke.secureredis.io", "--ignore-not-found")


def test_tier_starts_and_stops_from_python():
    name = f"cp-{uuid.uuid4().hex[:8]}"
    cluster = clusters.start("control-plane", name=name)
    try:
        assert cluster.owned
        assert cluster.kubeconfig.exists()
        version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
        assert version["serverVersion"]["gitVersion"].startswith("v1.")
        assert clusters.find_running("control-plane", name) is not None
    finally:
        clusters.stop(cluster)
    assert clusters.find_running("control-plane", name) is None
    assert not cluster.state_dir.exists()


def test_crd_accepts_valid_object(control_plane, widget_crd, namespace):
    control_plane.apply(widget("ok", size=2), namespace=namespace)
    stored = control_plane.get_json("widget", "ok", "-n", namespace)
    assert stored["spec"] == {"size": 2, "mode": "small"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"size": 0}, "spec.size"),
        ({"size": 2, "mode": "huge"}, "spec.mode"),
        ({"mode": "large"}, "spec.size"),
        ({"size": 5, "mode": "small"}, "mode small allows size 3 at most"),
    ],
    ids=["below-minimum", "unknown-enum", "missing-required", "cel-rule"],
)
def test_crd_rejects_invalid_object(control_plane, widget_crd, namespace, spec, expected):
    result = control_plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input=json.dumps(widget("bad", **spec)), check=False
    )
    assert result.returncode != 0
    assert expected in result.stderr
    assert not control_plane.exists("widget", "bad", "-n", namespace)


def test_namespace_deletion_finishes(control_plane):
    name = clusters.create_namespace(control_plane, "deletion")
    control_plane.kubectl("create", "configmap", "leftover", "-n", name)
    clusters.delete_namespace(control_plane, name, wait=True)
    assert not control_plane.exists("namespace", name)


def test_statefulset_controller_creates_pods(control_plane, namespace):
    control_plane.apply({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db",
            "replicas": 2,
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": "localhost/secure-redis/redis:7.0"}]},
            },
        },
    }, namespace=namespace)
    clusters.wait_until(
        lambda: control_plane.exists("pod", "db-0", "-n", namespace),
        60,
        message="StatefulSet pod db-0 exists",
    )
