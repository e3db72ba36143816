"""Start, stop and talk to the local Kubernetes tiers from Python tests.

The tiers are started by hack/cluster.sh (see docs/local-kubernetes.md):

* ``control-plane``: etcd, kube-apiserver and kube-controller-manager.
* ``node``: the control plane plus a kubelet, containerd, CNI networking,
  kube-proxy, CoreDNS and a NetworkPolicy enforcer.

Environment variables:

* ``SRO_KUBECONFIG``: use this existing cluster instead of starting one; it
  is never stopped.
* ``SRO_KUBECTL``: the kubectl to run (default: the one built into the cache,
  else ``kubectl`` on PATH).
* ``SRO_KEEP_CLUSTER=1``: leave a tier started by the tests running at the
  end of the session, for debugging.
* ``SRO_CACHE``, ``SRO_RUN``: passed through to the hack/ scripts.

Starting a tier needs root, like hack/cluster.sh itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

REPO_ROOT = Path(__file__).resolve().parents[2]
HACK = REPO_ROOT / "hack"
TIERS = ("control-plane", "node")


class ClusterError(RuntimeError):
    """A tier failed to start or stop, or kubectl failed."""


@dataclass(frozen=True)
class Cluster:
    """A running cluster and the means to reach it."""

    tier: str
    name: str
    kubeconfig: Path
    kubectl_path: str
    # False for a cluster the tests found running or were given: they must
    # leave it running.
    owned: bool = False
    state_dir: Path | None = None
    containerd_socket: Path | None = None

    def env(self) -> dict[str, str]:
        """Return os.environ plus KUBECONFIG for this cluster."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster and return the completed process.

        With check (the default) a non-zero exit raises ClusterError carrying
        the command and its stderr.
        """
        command = [self.kubectl_path, "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise ClusterError(
                f"kubectl {' '.join(args)} exited with {result.returncode}: {result.stderr.strip()}"
            )
        return result

    def apply(self, manifest: str | dict[str, Any] | Iterable[dict[str, Any]], namespace: str | None = None) -> None:
        """Apply a YAML/JSON manifest string, an object or a list of objects."""
        if isinstance(manifest, dict):
            text = json.dumps(manifest)
        elif isinstance(manifest, str):
            text = manifest
        else:
            text = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifest)})
        args = ["apply", "-f", "-"]
        if namespace:
            args += ["-n", namespace]
        self.kubectl(*args, input=text)

    def get_json(self, *args: str) -> Any:
        """Return the parsed output of ``kubectl get ARGS -o json``."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def exists(self, *args: str) -> bool:
        """True if ``kubectl get ARGS`` finds the object."""
        return self.kubectl("get", *args, check=False).returncode == 0

    def exec(self, namespace: str, pod: str, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command in a pod's first container; the result is not checked."""
        return self.kubectl("-n", namespace, "exec", pod, "--", *command, check=False, timeout=timeout)

    def wait_for_pods_ready(self, namespace: str, selector: str, count: int = 1, timeout: float = 120) -> None:
        """Wait until ``count`` pods matching the label selector are Ready."""
        deadline = time.monotonic() + timeout
        while True:
            pods = self.get_json("pods", "-n", namespace, "-l", selector)["items"]
            ready = [pod for pod in pods if _pod_ready(pod)]
            if len(ready) >= count:
                return
            if time.monotonic() > deadline:
                phases = {pod["metadata"]["name"]: pod.get("status", {}).get("phase") for pod in pods}
                raise ClusterError(
                    f"{len(ready)} of {count} pods matching {selector!r} in {namespace} were Ready "
                    f"after {timeout} s; phases: {phases}"
                )
            time.sleep(1)


def _pod_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def wait_until(predicate, timeout: float, interval: float = 0.5, message: str = "condition") -> None:
    """Poll predicate() until it returns true; raise TimeoutError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message} did not hold within {timeout} s")
        time.sleep(interval)


def default_kubectl() -> str:
    """Return the kubectl to use: SRO_KUBECTL, the cached build, or PATH's."""
    if os.environ.get("SRO_KUBECTL"):
        return os.environ["SRO_KUBECTL"]
    versions = _read_versions()
    cache = Path(os.environ.get("SRO_CACHE", "/var/cache/secure-redis-operator"))
    built = cache / f"kubernetes-{versions['KUBERNETES_VERSION']}" / "bin" / "kubectl"
    if built.exists():
        return str(built)
    found = shutil.which("kubectl")
    if found:
        return found
    raise ClusterError(f"no kubectl: set SRO_KUBECTL or run hack/build-k8s.sh (expected {built})")


def _read_versions() -> dict[str, str]:
    values = {}
    for line in (HACK / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key] = value.strip('"')
    return values


def _run_script(*args: str, timeout: float) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise ClusterError(
            f"{' '.join(args)} exited with {result.returncode}:\n{result.stderr[-4000:]}"
        )
    return result.stdout


def _parse_env(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        line = line.removeprefix("export ").strip()
        if "=" in line:
            key, _, value = line.partition("=")
            values[key] = value
    return values


def _cluster_from_env(values: dict[str, str], owned: bool) -> Cluster:
    socket = values.get("SRO_CONTAINERD_SOCKET")
    return Cluster(
        tier=values["SRO_TIER"],
        name=values["SRO_CLUSTER_NAME"],
        kubeconfig=Path(values["KUBECONFIG"]),
        kubectl_path=default_kubectl(),
        owned=owned,
        state_dir=Path(values["SRO_STATE_DIR"]),
        containerd_socket=Path(socket) if socket else None,
    )


def find_running(tier: str, name: str | None = None) -> Cluster | None:
    """Return the tier if hack/cluster.sh reports it running, else None."""
    _check_tier(tier)
    result = subprocess.run(
        [str(HACK / "cluster.sh"), "env", "--tier", tier, "--name", name or tier],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if result.returncode != 0:
        return None
    return _cluster_from_env(_parse_env(result.stdout), owned=False)


def build(tier: str = "node", timeout: float = 3600) -> None:
    """Build the binaries (and for the node tier, images) the tier needs; cached."""
    _check_tier(tier)
    _run_script(str(HACK / "build-k8s.sh"), "--tier", tier, timeout=timeout)
    if tier == "node":
        _run_script(str(HACK / "images.sh"), "build", timeout=timeout)


def start(tier: str = "control-plane", name: str | None = None, timeout: float = 600) -> Cluster:
    """Start a tier with hack/cluster.sh and return it (owned by the caller).

    The binaries must be built already (see build()). A unique name lets
    several control-plane tiers run at once; only one node tier can.
    """
    _check_tier(tier)
    name = name or tier
    _run_script(str(HACK / "cluster.sh"), "up", "--tier", tier, "--name", name, timeout=timeout)
    cluster = find_running(tier, name)
    if cluster is None:
        raise ClusterError(f"hack/cluster.sh up --tier {tier} --name {name} succeeded but the tier is not running")
    return Cluster(**{**cluster.__dict__, "owned": True})


def stop(cluster: Cluster, timeout: float = 300) -> None:
    """Stop a tier that start() started; clusters not owned are left alone."""
    if not cluster.owned:
        return
    _run_script(str(HACK / "cluster.sh"), "down", "--tier", cluster.tier, "--name", cluster.name, timeout=timeout)


def external_cluster() -> Cluster | None:
    """Return the cluster named by SRO_KUBECONFIG, if that is set."""
    kubeconfig = os.environ.get("SRO_KUBECONFIG")
    if not kubeconfig:
        return None
    return Cluster(tier="node", name="external", kubeconfig=Path(kubeconfig), kubectl_path=default_kubectl())


def acquire(tier: str) -> Cluster:
    """Return a usable cluster of the tier: external, already running, or newly started.

    A node tier also serves a request for the control-plane tier, since it
    contains one.
    """
    _check_tier(tier)
    cluster = external_cluster()
    if cluster:
        return cluster
    for candidate in (tier, "node") if tier == "control-plane" else (tier,):
        cluster = find_running(candidate)
        if cluster:
            return cluster
    build(tier)
    return start(tier)


def release(cluster: Cluster) -> None:
    """Stop a cluster acquire() started, unless SRO_KEEP_CLUSTER=1."""
    if os.environ.get("SRO_KEEP_CLUSTER") == "1":
        return
    stop(cluster)


def unique_namespace_name(hint: str) -> str:
    """Return a valid namespace name starting with the hint, unique per call."""
    cleaned = "".join(ch if ch.isalnum() else "-" for ch in hint.lower()).strip("-")
    cleaned = "-".join(part for part in cleaned.split("-") if part)[:40].rstrip("-")
    return f"t-{cleaned or 'test'}-{uuid.uuid4().hex[:8]}"


def create_namespace(cluster: Cluster, hint: str, labels: dict[str, str] | None = None, timeout: float = 60) -> str:
    """Create a uniquely named namespace and wait for its default ServiceAccount.

    Pods cannot be created in a namespace before the controller manager has
    created its "default" ServiceAccount, so the wait is part of creation.
    """
    name = unique_namespace_name(hint)
    cluster.apply({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"secure-redis-operator/test": "true", **(labels or {})}},
    })
    wait_until(
        lambda: cluster.exists("serviceaccount", "default", "-n", name),
        timeout,
        message=f"ServiceAccount default in namespace {name}",
    )
    return name


def delete_namespace(cluster: Cluster, name: str, wait: bool = False) -> None:
    """Delete a namespace; with wait, block until it is gone."""
    cluster.kubectl("delete", "namespace", name, "--ignore-not-found", f"--wait={str(wait).lower()}", timeout=180)


def _check_tier(tier: str) -> None:
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {TIERS}, not {tier!r}")
