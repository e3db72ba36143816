"""Run the operator as a real process against a test cluster, and read its results.

Tests drive the operator the way users do: through SecureRedis objects,
with kubectl, and by reading status, Events and children. The operator runs
as ``secure-redis run`` in a subprocess, so a test can kill and restart it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .cluster import Cluster, wait_until

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "secureredis.yaml"
# Short enough that ten resyncs fit in a test, long enough to stay idle.
TEST_RESYNC_SECONDS = 1.0


def install_crd(cluster: Cluster) -> None:
    """Apply the CRD and wait until the API server serves it."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    "crd/secureredises.secureredis.io")


class OperatorProcess:
    """``secure-redis run`` for one namespace, with its log in a file."""

    def __init__(self, cluster: Cluster, namespace: str, log_path: Path,
                 resync_seconds: float = TEST_RESYNC_SECONDS):
        self.cluster = cluster
        self.namespace = namespace
        self.log_path = log_path
        self.resync_seconds = resync_seconds
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [
            sys.executable, "-m", "secureredis.cli", "run",
            "--kubeconfig", str(self.cluster.kubeconfig),
            "--namespace", self.namespace,
            "--resync-interval", str(self.resync_seconds),
            # Several operators may run side by side; none needs metrics.
            "--metrics-port", "0",
            "--verbose",
        ]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Kill the operator abruptly, as a crashed or evicted pod would be."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def count(self, text: str) -> int:
        return self.log().count(text)


def secure_redis(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "secureredis.io/v1alpha1", "kind": "SecureRedis",
            "metadata": {"name": name}, "spec": spec}


def get(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    result = cluster.kubectl("-n", namespace, "get", kind, name, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def condition(obj: dict[str, Any] | None, condition_type: str) -> dict[str, Any] | None:
    for entry in ((obj or {}).get("status") or {}).get("conditions") or []:
        if entry.get("type") == condition_type:
            return entry
    return None


def wait_for_condition(cluster: Cluster, namespace: str, name: str, condition_type: str,
                       status: str, timeout: float = 60) -> dict[str, Any]:
    """Wait until the SecureRedis has the condition with the status; return the object."""
    found: dict[str, Any] = {}

    def reached() -> bool:
        obj = get(cluster, namespace, "secureredis", name)
        entry = condition(obj, condition_type)
        if entry and entry.get("status") == status and \
                entry.get("observedGeneration") == obj["metadata"]["generation"]:
            found["obj"] = obj
            return True
        return False

    wait_until(reached, timeout, message=f"{condition_type}={status} on {namespace}/{name}")
    return found["obj"]


def events(cluster: Cluster, namespace: str, reason: str) -> list[dict[str, Any]]:
    items = cluster.get_json("events", "-n", namespace)["items"]
    return [e for e in items if e.get("reason") == reason]


def wait_seconds(seconds: float) -> None:
    time.sleep(seconds)
