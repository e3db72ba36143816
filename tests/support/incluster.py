"""Run the operator as the in-cluster Deployment from manifests/, as users install it.

The image is built locally (hack/build-operator-image.sh) and imported into
the node tier's containerd. The Deployment is applied with ``kubectl apply
-k manifests/base`` and only its resync interval is shortened for tests. A
handle offers the same start/stop/kill/log calls as ``OperatorProcess``, so
end-to-end tests run against either.
"""

from __future__ import annotations

import json
import subprocess
import time

from .cluster import Cluster, ClusterError, wait_until
from .operator import REPO

NAMESPACE = "secure-redis-system"
DEPLOYMENT = "secure-redis-operator"
SELECTOR = "app.kubernetes.io/name=secure-redis-operator"


def build_and_import(cluster: Cluster) -> None:
    if cluster.containerd_socket is None:
        raise ClusterError("the in-cluster operator needs the node tier's containerd socket")
    script = REPO / "hack" / "build-operator-image.sh"
    result = subprocess.run([str(script), "import", str(cluster.containerd_socket)],
                            capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise ClusterError(f"building the operator image failed: {result.stderr[-2000:]}")


def deploy(cluster: Cluster, resync_seconds: float) -> None:
    """Apply manifests/base and wait until the operator pod is Ready."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k",
                    str(REPO / "manifests" / "base"), timeout=300)
    deployment = cluster.get_json("deployment", "-n", NAMESPACE, DEPLOYMENT)
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    wanted = [a for a in args if not a.startswith("--resync-interval")]
    wanted.append(f"--resync-interval={resync_seconds}")
    if wanted != args:
        patch = [{"op": "replace", "path": "/spec/template/spec/containers/0/args",
                  "value": wanted}]
        cluster.kubectl("-n", NAMESPACE, "patch", "deployment", DEPLOYMENT, "--type=json",
                        "-p", json.dumps(patch))
    cluster.kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{DEPLOYMENT}",
                    "--timeout=300s", timeout=330)


class InClusterOperator:
    """The operator Deployment, seen by one test."""

    def __init__(self, cluster: Cluster, resync_seconds: float):
        self.cluster = cluster
        self.resync_seconds = resync_seconds

    def pod(self) -> dict | None:
        pods = self.cluster.get_json("pods", "-n", NAMESPACE, "-l", SELECTOR)["items"]
        running = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return running[0] if running else None

    def start(self) -> None:
        """Wait until the Deployment runs a Ready operator pod again."""
        self.cluster.kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{DEPLOYMENT}",
                             "--timeout=300s", timeout=330)
        self.cluster.wait_for_pods_ready(NAMESPACE, SELECTOR, timeout=300)

    def stop(self) -> None:
        """Leave the shared Deployment running for the next test."""

    def kill(self) -> None:
        """Delete the operator pod at once, as an evicted or crashed pod would go."""
        pod = self.pod()
        if pod:
            self.cluster.kubectl("-n", NAMESPACE, "delete", "pod", pod["metadata"]["name"],
                                 "--grace-period=0", "--force", "--wait=false")
        time.sleep(1)

    def log(self) -> str:
        result = self.cluster.kubectl("-n", NAMESPACE, "logs", f"deployment/{DEPLOYMENT}",
                                      "--tail=-1", check=False)
        return result.stdout

    def count(self, text: str) -> int:
        return self.log().count(text)

    def metrics_url(self) -> str:
        wait_until(lambda: self.pod() is not None, 60, message="an operator pod")
        return f"http://{self.pod()['status']['podIP']}:8081/metrics"
