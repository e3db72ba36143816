"""The install manifests in manifests/: RBAC, the operator's Deployment and the overlay.

These read the YAML files directly. tests/integration/test_manifests.py
applies them to a real API server and checks the RBAC with kubectl auth can-i.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from secureredis import __version__
from secureredis.render import RenderContext

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "manifests" / "base"
NAMESPACED = REPO / "manifests" / "overlays" / "namespaced"


def load(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(documents: list[dict], kind: str, name: str) -> dict:
    matches = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name} appears {len(matches)} times"
    return matches[0]


RBAC = load(BASE / "rbac.yaml")
CLUSTER_ROLE = find(RBAC, "ClusterRole", "secure-redis-operator")
ROLE = find(load(NAMESPACED / "watched-namespace" / "role.yaml"), "Role", "secure-redis-operator")
DEPLOYMENT = find(load(BASE / "deployment.yaml"), "Deployment", "secure-redis-operator")
POD_SPEC = DEPLOYMENT["spec"]["template"]["spec"]
CONTAINER = POD_SPEC["containers"][0]
ALL_RULES = [rule for doc in RBAC + [ROLE] for rule in doc.get("rules", [])]


def test_role_matches_cluster_role():
    assert ROLE["rules"] == CLUSTER_ROLE["rules"]


@pytest.mark.parametrize("field", ["apiGroups", "resources", "verbs"])
def test_rbac_has_no_wildcards(field):
    for rule in ALL_RULES:
        assert "*" not in rule.get(field, []), rule


def test_rbac_never_deletes():
    for rule in ALL_RULES:
        assert not {"delete", "deletecollection"} & set(rule["verbs"]), rule


def test_rbac_has_no_escalation_verbs():
    for rule in ALL_RULES:
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule


def test_rbac_grants_no_exec_or_rbac_resources():
    forbidden = {"pods/exec", "pods/attach", "pods/portforward", "serviceaccounts/token",
                 "roles", "rolebindings", "clusterroles", "clusterrolebindings"}
    for rule in ALL_RULES:
        assert not forbidden & set(rule["resources"]), rule


def test_bindings_name_operator_service_account():
    subjects = [subject for doc in RBAC if doc["kind"].endswith("Binding")
                for subject in doc["subjects"]]
    binding = load(NAMESPACED / "watched-namespace" / "rolebinding.yaml")[0]

    for subject in subjects + binding["subjects"]:
        assert subject == {"kind": "ServiceAccount", "name": "secure-redis-operator",
                           "namespace": "secure-redis-system"}


def test_pod_labels_match_render_context():
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]

    for key, value in RenderContext().operator_pod_labels.items():
        assert labels.get(key) == value


def test_namespace_matches_render_context():
    namespace = load(BASE / "namespace.yaml")[0]

    assert namespace["metadata"]["name"] == RenderContext().operator_namespace
    assert DEPLOYMENT["metadata"]["namespace"] == RenderContext().operator_namespace


def test_namespace_enforces_restricted_profile():
    labels = load(BASE / "namespace.yaml")[0]["metadata"]["labels"]

    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_image_tag_is_package_version():
    assert CONTAINER["image"] == f"localhost/secure-redis/operator:{__version__}"
    assert CONTAINER["imagePullPolicy"] == "IfNotPresent"


def test_single_replica_recreated():
    assert DEPLOYMENT["spec"]["replicas"] == 1
    assert DEPLOYMENT["spec"]["strategy"]["type"] == "Recreate"


def test_pod_runs_hardened():
    pod = POD_SPEC["securityContext"]
    container = CONTAINER["securityContext"]

    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] != 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["allowPrivilegeEscalation"] is False
    assert container["readOnlyRootFilesystem"] is True
    assert container["capabilities"]["drop"] == ["ALL"]


def test_container_has_resources():
    resources = CONTAINER["resources"]

    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def test_probes_use_liveness_endpoint():
    assert "--liveness=http://0.0.0.0:8080/healthz" in CONTAINER["args"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert CONTAINER[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {port["name"]: port["containerPort"] for port in CONTAINER["ports"]}
    assert ports["health"] == 8080


def test_metrics_port_declared():
    ports = {port["name"]: port["containerPort"] for port in CONTAINER["ports"]}

    assert "--metrics-port=8081" in CONTAINER["args"]
    assert ports["metrics"] == 8081


def test_pod_namespace_from_downward_api():
    env = {item["name"]: item for item in CONTAINER["env"]}

    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_overlay_watches_listed_namespaces():
    kustomization = yaml.safe_load((NAMESPACED / "kustomization.yaml").read_text())
    granted = set()
    for entry in kustomization["resources"]:
        if entry.startswith("namespaces/"):
            granted.add(yaml.safe_load((NAMESPACED / entry / "kustomization.yaml").read_text())
                        ["namespace"])
    deployment_patch = next(p for p in kustomization["patches"]
                            if p["target"]["kind"] == "Deployment")
    watched = {op["value"].removeprefix("--namespace=")
               for op in yaml.safe_load(deployment_patch["patch"])}

    assert granted
    assert watched == granted
