"""The install manifests against a real API server: admission, RBAC and a run under them.

The dry runs apply manifests/ exactly as a user would. The RBAC tests apply
the ServiceAccount and RBAC objects for real, but moved into the test's own
namespaces and with cluster-scoped names made unique, so they never touch
another installation on the same cluster; the cluster-scoped objects are
deleted afterwards. ``kubectl auth can-i --as`` then asks the API server
what the ServiceAccount may do.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from secureredis import names
from support import cluster as clusters
from support.cluster import Cluster, wait_until
from support.operator import REPO, events, get, secure_redis, wait_for_condition

pytestmark = pytest.mark.integration

BASE = REPO / "manifests" / "base"
NAMESPACED = REPO / "manifests" / "overlays" / "namespaced"
OPERATOR_NAMESPACE = "secure-redis-system"
SERVICE_ACCOUNT = "secure-redis-operator"
OVERLAY_NAMESPACES = ("team-a", "team-b")
CLUSTER_SCOPED = ("ClusterRole", "ClusterRoleBinding")

# What the operator needs in every namespace it manages: (verb, resource).
NAMESPACED_NEEDS = [
    ("list", "secureredises.secureredis.io"),
    ("watch", "secureredises.secureredis.io"),
    ("patch", "secureredises.secureredis.io"),
    ("patch", "secureredises.secureredis.io/status"),
    ("update", "secureredises.secureredis.io/finalizers"),
    *[(verb, resource)
      for resource in ("configmaps", "secrets", "services", "statefulsets.apps",
                       "networkpolicies.networking.k8s.io", "poddisruptionbudgets.policy")
      for verb in ("get", "create", "patch")],
    ("list", "pods"),
    ("patch", "pods"),
    ("create", "events"),
]
# What it must never do, in any namespace.
NAMESPACED_DENIED = [
    ("delete", "secrets"),
    ("list", "secrets"),
    ("watch", "secrets"),
    ("update", "secrets"),
    ("delete", "secureredises.secureredis.io"),
    ("create", "secureredises.secureredis.io"),
    ("update", "secureredises.secureredis.io/status"),
    ("create", "pods"),
    ("delete", "pods"),
    ("create", "pods/exec"),
    ("create", "pods/portforward"),
    ("get", "pods/log"),
    ("create", "serviceaccounts/token"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "deployments.apps"),
    ("delete", "statefulsets.apps"),
    ("delete", "persistentvolumeclaims"),
    ("delete", "networkpolicies.networking.k8s.io"),
    ("update", "configmaps"),
]
CLUSTER_NEEDS = [
    ("list", "customresourcedefinitions.apiextensions.k8s.io"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
]
CLUSTER_DENIED = [
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("bind", "clusterroles.rbac.authorization.k8s.io"),
    ("impersonate", "serviceaccounts"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("patch", "customresourcedefinitions.apiextensions.k8s.io"),
    ("delete", "namespaces"),
    ("create", "namespaces"),
    ("patch", "nodes"),
    ("create", "validatingwebhookconfigurations.admissionregistration.k8s.io"),
]


def kustomize(cluster: Cluster, directory: Path) -> list[dict]:
    output = cluster.kubectl("kustomize", str(directory)).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


@contextmanager
def existing_namespaces(cluster: Cluster, wanted: tuple[str, ...]) -> Iterator[None]:
    """Create the namespaces that are missing; delete only those afterwards.

    A server-side dry run of an object in a namespace that does not exist
    fails with NotFound, even when the same apply creates the namespace.
    """
    created = []
    for name in wanted:
        if not cluster.exists("namespace", name):
            cluster.apply({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": name,
                                        "labels": {"secure-redis-operator/test": "true"}}})
            created.append(name)
    try:
        yield
    finally:
        for name in created:
            clusters.delete_namespace(cluster, name, wait=True)


def dry_run(cluster: Cluster, directory: Path) -> str:
    result = cluster.kubectl("apply", "--server-side", "--dry-run=server", "-k", str(directory),
                             check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_base_dry_run(control_plane):
    with existing_namespaces(control_plane, (OPERATOR_NAMESPACE,)):
        output = dry_run(control_plane, BASE)

    for expected in ("deployment.apps/secure-redis-operator",
                     "clusterrole.rbac.authorization.k8s.io/secure-redis-operator",
                     "customresourcedefinition.apiextensions.k8s.io/secureredises.secureredis.io"):
        assert f"{expected} serverside-applied (server dry run)" in output


def test_namespaced_overlay_dry_run(control_plane):
    with existing_namespaces(control_plane, (OPERATOR_NAMESPACE, *OVERLAY_NAMESPACES)):
        output = dry_run(control_plane, NAMESPACED)

    # One Role and one RoleBinding per watched namespace, and no cluster-wide grant.
    role = "role.rbac.authorization.k8s.io/secure-redis-operator serverside-applied"
    binding = "rolebinding.rbac.authorization.k8s.io/secure-redis-operator serverside-applied"
    assert output.count(role) == len(OVERLAY_NAMESPACES)
    assert output.count(binding) == len(OVERLAY_NAMESPACES)
    assert "clusterrolebinding.rbac.authorization.k8s.io/secure-redis-operator " not in output


def relocate(documents: list[dict], operator_namespace: str,
             namespaces: dict[str, str]) -> list[dict]:
    """Return the RBAC objects moved into test namespaces, with unique cluster-scoped names.

    ``namespaces`` maps a namespace named in the manifests to the test's
    namespace. Cluster-scoped objects get the operator namespace as a suffix.
    """
    mapping = {OPERATOR_NAMESPACE: operator_namespace, **namespaces}
    suffix = f"-{operator_namespace}"
    moved = []
    for doc in documents:
        kind = doc["kind"]
        if kind not in ("ServiceAccount", "Role", "RoleBinding", *CLUSTER_SCOPED):
            continue
        doc = json.loads(json.dumps(doc))
        metadata = doc["metadata"]
        metadata.setdefault("labels", {})["secure-redis-operator/test"] = "true"
        if kind in CLUSTER_SCOPED:
            metadata["name"] += suffix
        else:
            metadata["namespace"] = mapping[metadata["namespace"]]
        if doc.get("roleRef", {}).get("kind") == "ClusterRole":
            doc["roleRef"]["name"] += suffix
        for subject in doc.get("subjects", []):
            subject["namespace"] = mapping[subject["namespace"]]
        moved.append(doc)
    return moved


@contextmanager
def installed_rbac(cluster: Cluster, directory: Path, operator_namespace: str,
                   namespaces: dict[str, str]) -> Iterator[list[dict]]:
    objects = relocate(kustomize(cluster, directory), operator_namespace, namespaces)
    cluster_scoped = [o for o in objects if o["kind"] in CLUSTER_SCOPED]
    try:
        cluster.apply(objects)
        yield objects
    finally:
        for obj in cluster_scoped:
            cluster.kubectl("delete", obj["kind"].lower(), obj["metadata"]["name"],
                            "--ignore-not-found", "--wait=false")


def can_i(cluster: Cluster, operator_namespace: str, verb: str, resource: str,
          namespace: str | None) -> bool:
    """Return whether the operator's ServiceAccount may do ``verb`` on ``resource``."""
    resource, _, subresource = resource.partition("/")
    args = ["auth", "can-i", verb, resource,
            f"--as=system:serviceaccount:{operator_namespace}:{SERVICE_ACCOUNT}"]
    if subresource:
        args.append(f"--subresource={subresource}")
    args += ["-n", namespace] if namespace else ["--all-namespaces"]
    result = cluster.kubectl(*args, check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl {' '.join(args)}: {result.stderr.strip()}"
    return answer == "yes"


def permission_table(checks: list[tuple[str, str]], namespace: str | None,
                     expected: bool) -> list[tuple[str, str, str | None, bool]]:
    return [(verb, resource, namespace, expected) for verb, resource in checks]


def assert_permissions(cluster: Cluster, operator_namespace: str,
                       table: list[tuple[str, str, str | None, bool]]) -> None:
    wrong = []
    for verb, resource, namespace, expected in table:
        if can_i(cluster, operator_namespace, verb, resource, namespace) != expected:
            where = f"in {namespace}" if namespace else "cluster-wide"
            wrong.append(f"{verb} {resource} {where}: expected {'yes' if expected else 'no'}")
    assert not wrong, "\n".join(wrong)


@pytest.fixture
def extra_namespaces(control_plane, request) -> Iterator[list[str]]:
    created = [clusters.create_namespace(control_plane, f"{request.node.name}-{index}")
               for index in range(3)]
    try:
        yield created
    finally:
        for name in created:
            clusters.delete_namespace(control_plane, name)


def test_base_rbac_permissions(control_plane, namespace, extra_namespaces):
    other = extra_namespaces[0]
    with installed_rbac(control_plane, BASE, namespace, {}):
        table = []
        for where in (other, "default"):
            table += permission_table(NAMESPACED_NEEDS, where, True)
            table += permission_table(NAMESPACED_DENIED, where, False)
        table += [(verb, resource, None, True) for verb, resource in CLUSTER_NEEDS]
        table += [(verb, resource, None, False) for verb, resource in CLUSTER_DENIED]
        # Cluster-wide mode needs no namespace list: kopf watches all at once.
        table += [("list", "namespaces", None, False), ("watch", "namespaces", None, False)]
        assert_permissions(control_plane, namespace, table)


def test_namespaced_rbac_permissions(control_plane, namespace, extra_namespaces):
    watched_a, watched_b, unmanaged = extra_namespaces
    mapping = dict(zip(OVERLAY_NAMESPACES, (watched_a, watched_b)))
    with installed_rbac(control_plane, NAMESPACED, namespace, mapping):
        table = []
        for where in (watched_a, watched_b):
            table += permission_table(NAMESPACED_NEEDS, where, True)
            table += permission_table(NAMESPACED_DENIED, where, False)
        for where in (unmanaged, namespace, "kube-system", "default"):
            table += permission_table(NAMESPACED_NEEDS, where, False)
        # Nothing cluster-wide beyond kopf's discovery reads.
        table += [(verb, resource, None, False) for verb, resource in NAMESPACED_NEEDS]
        table += [(verb, resource, None, True) for verb, resource in CLUSTER_NEEDS]
        table += [("list", "namespaces", None, True), ("watch", "namespaces", None, True)]
        table += [(verb, resource, None, False) for verb, resource in CLUSTER_DENIED]
        assert_permissions(control_plane, namespace, table)


# --- The operator running with nothing but the overlay's RBAC ---------------------------

def service_account_kubeconfig(cluster: Cluster, namespace: str, path: Path) -> Path:
    """Write a kubeconfig that authenticates as the operator's ServiceAccount.

    The token goes only into the file (mode 0600), never into output.
    """
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    server_entry = admin["clusters"][0]["cluster"]
    token = cluster.kubectl("-n", namespace, "create", "token", SERVICE_ACCOUNT,
                            "--duration=30m").stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {
            "server": server_entry["server"],
            "certificate-authority-data": _ca_data(server_entry)}}],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "test", "user": SERVICE_ACCOUNT}}],
        "current-context": "operator",
    }
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(config))
    return path


def _ca_data(cluster_entry: dict) -> str:
    if "certificate-authority-data" in cluster_entry:
        return cluster_entry["certificate-authority-data"]
    return base64.b64encode(Path(cluster_entry["certificate-authority"]).read_bytes()).decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def operator_process(kubeconfig: Path, watched: list[str], log_path: Path,
                     metrics_port: int) -> Iterator[subprocess.Popen]:
    command = [sys.executable, "-m", "secureredis.cli", "run", "--kubeconfig", str(kubeconfig),
               "--resync-interval", "2", "--metrics-port", str(metrics_port),
               *[f"--namespace={name}" for name in watched]]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


# kube.KubeError reads "... failed: 403 ..."; kopf logs APIForbiddenError or
# "Not enough permissions" when a request it makes is refused.
@contextmanager
def log_on_failure(log_path: Path) -> Iterator[None]:
    """Add the end of the operator's log to a failed wait or assertion."""
    try:
        yield
    except (TimeoutError, AssertionError) as error:
        log = log_path.read_text(errors="replace") if log_path.exists() else ""
        pytest.fail(f"{error}\noperator log (end):\n{log[-4000:]}")


PERMISSION_ERRORS = ("failed: 403", "APIForbiddenError", "Forbidden", "forbidden",
                     "Not enough permissions")


def test_operator_runs_under_namespaced_rbac(control_plane, crd, namespace, extra_namespaces,
                                             tmp_path):
    watched_a, watched_b, unmanaged = extra_namespaces
    mapping = dict(zip(OVERLAY_NAMESPACES, (watched_a, watched_b)))
    example = yaml.safe_load((REPO / "manifests/examples/standalone.yaml").read_text())
    log_path = tmp_path / "operator.log"
    port = free_port()

    with installed_rbac(control_plane, NAMESPACED, namespace, mapping):
        kubeconfig = service_account_kubeconfig(control_plane, namespace,
                                                tmp_path / "operator.kubeconfig")
        with operator_process(kubeconfig, [watched_a, watched_b], log_path, port) as process, \
                log_on_failure(log_path):
            control_plane.apply(secure_redis("cache", example["spec"]), namespace=watched_a)
            control_plane.apply(secure_redis("cache", example["spec"]), namespace=unmanaged)
            wait_for_condition(control_plane, watched_a, "cache", "Stalled", "False", timeout=90)
            wait_until(lambda: get(control_plane, watched_a, "networkpolicy",
                                   names.network_policy("cache")) is not None, 30,
                       message="NetworkPolicy cache")

            # A deleted child comes back with an Event: create on events works.
            control_plane.kubectl("-n", watched_a, "delete", "networkpolicy",
                                  names.network_policy("cache"))
            wait_until(lambda: events(control_plane, watched_a, "ChildRecreated"), 30,
                       message="ChildRecreated Event")
            metrics_text = scrape(port)
            time.sleep(3)  # two more resyncs, which must not fail either
            assert process.poll() is None, "the operator exited"

            # kopf puts a finalizer on every object that has a timer, so the
            # object must go while the operator runs, or its namespace
            # never finishes deleting.
            control_plane.kubectl("-n", watched_a, "delete", "secureredis", "cache",
                                  "--wait=true", timeout=60)

    log = log_path.read_text(errors="replace")
    for marker in PERMISSION_ERRORS:
        assert marker not in log, f"{marker!r} in the operator log:\n{log[-3000:]}"
    assert get(control_plane, unmanaged, "statefulset", names.statefulset("cache")) is None
    assert "secure_redis_operator_build_info" in metrics_text
