#!/usr/bin/env python3
"""Benchmark the operator against a real API server; prints one JSON document.

Measures, with the operator running as ``secure-redis run`` in a subprocess:

- ``single``: time from creating one SecureRedis until the operator has
  applied every child and written a status for its generation (median of
  ``--runs``). On the node tier it also waits for ``Reconciling=False``,
  which needs running pods; on the control-plane tier pods never start, so
  that condition stays True and only the first measure is taken.
- ``hundred``: time from creating 100 SecureRedis objects at once until all
  have a status for their generation, and the operator's peak RSS.
- ``idle_writes``: API writes the operator reports (its
  ``secure_redis_api_writes_total`` metric) over 10 idle resyncs of the
  100 objects; the target is 0.

Usage: KUBECONFIG=... operator_bench.py [--tier control-plane|node] [--runs N]
Start a tier first, for example ``hack/cluster.sh up --tier control-plane
--name bench``. Everything runs against that cluster on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KUBECTL = os.environ.get("SRO_KUBECTL") or str(
    Path("/var/cache/secure-redis-operator/kubernetes-v1.35.4/bin/kubectl"))
SPEC = {"acl": {"users": [{"name": "app", "rules": ["~app:*", "+@read", "+@write"]}]}}


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
    result = subprocess.run([KUBECTL, *args], input=stdin, capture_output=True, text=True,
                            timeout=300)
    if check and result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def secure_redis(name: str) -> dict:
    return {"apiVersion": "secureredis.io/v1alpha1", "kind": "SecureRedis",
            "metadata": {"name": name}, "spec": SPEC}


def apply(namespace: str, objects: list[dict]) -> None:
    kubectl("-n", namespace, "apply", "-f", "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))


def statuses(namespace: str) -> list[dict]:
    return json.loads(kubectl("-n", namespace, "get", "secureredis", "-o", "json"))["items"]


def observed(item: dict) -> bool:
    status = item.get("status") or {}
    return status.get("observedGeneration") == item["metadata"]["generation"]


def condition(item: dict, condition_type: str) -> str | None:
    for entry in (item.get("status") or {}).get("conditions") or []:
        if entry["type"] == condition_type:
            return entry["status"]
    return None


def wait_all(namespace: str, count: int, predicate, timeout: float,
             started: float | None = None) -> float:
    """Wait until ``count`` objects satisfy ``predicate``; return seconds since ``started``."""
    started = time.monotonic() if started is None else started
    while time.monotonic() - started < timeout:
        items = statuses(namespace)
        if len(items) == count and all(predicate(i) for i in items):
            return time.monotonic() - started
        time.sleep(0.1)
    raise TimeoutError(f"{count} objects in {namespace} did not settle within {timeout} s")


class Operator:
    def __init__(self, namespace: str, resync: float, metrics_port: int, log: Path):
        self.command = [sys.executable, "-m", "secureredis.cli", "run",
                        "--kubeconfig", os.environ["KUBECONFIG"], "--namespace", namespace,
                        "--resync-interval", str(resync), "--metrics-port", str(metrics_port)]
        self.metrics_port = metrics_port
        self.log = log
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Operator":
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def api_writes(self) -> float:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        for _ in range(50):
            try:
                text = urllib.request.urlopen(url, timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"the operator's metrics at {url} did not respond")
        for line in text.splitlines():
            if line.startswith("secure_redis_api_writes_total "):
                return float(line.split()[1])
        return 0.0


def fresh_namespace(prefix: str) -> str:
    name = f"{prefix}-{int(time.time() * 1000) % 10**8}"
    kubectl("create", "namespace", name)
    return name


def bench_single(runs: int, tier: str, workdir: Path) -> dict:
    applied, ready = [], []
    for run in range(runs):
        namespace = fresh_namespace("bench-one")
        with Operator(namespace, 30, 18100 + run, workdir / f"single-{run}.log"):
            time.sleep(2)  # let kopf log in and start watching
            started = time.monotonic()
            apply(namespace, [secure_redis("one")])
            applied.append(wait_all(namespace, 1, observed, 120, started))
            if tier == "node":
                ready.append(applied[-1] + wait_all(
                    namespace, 1, lambda i: condition(i, "Reconciling") == "False", 300))
        kubectl("delete", "namespace", namespace, "--wait=false")
    result = {"runs": runs, "median_seconds_to_first_status": round(statistics.median(applied), 3),
              "all_seconds": [round(x, 3) for x in applied]}
    if ready:
        result["median_seconds_to_reconciling_false"] = round(statistics.median(ready), 3)
    return result


def bench_hundred(count: int, resync: float, workdir: Path) -> dict:
    namespace = fresh_namespace("bench-many")
    with Operator(namespace, resync, 18200, workdir / "hundred.log") as operator:
        time.sleep(2)
        # The clock starts before kubectl sends the objects: the operator
        # works on the first ones while kubectl still creates the others.
        started = time.monotonic()
        apply(namespace, [secure_redis(f"r{i:03d}") for i in range(count)])
        seconds = wait_all(namespace, count, observed, 600, started)
        # Let the first resyncs and any late status writes pass, then count
        # writes over ten quiet resync periods.
        time.sleep(2 * resync)
        before = operator.api_writes()
        time.sleep(10 * resync)
        idle_writes = operator.api_writes() - before
        rss = operator.peak_rss_mib()
    kubectl("delete", "namespace", namespace, "--wait=false")
    return {"objects": count, "seconds_until_all_have_status": round(seconds, 2),
            "peak_rss_mib": round(rss, 1), "resync_seconds": resync,
            "api_writes_during_10_idle_resyncs": idle_writes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", choices=("control-plane", "node"), default="control-plane")
    parser.add_argument("--runs", type=int, default=5, help="single-object runs (default 5)")
    parser.add_argument("--count", type=int, default=100, help="objects created at once")
    parser.add_argument("--resync", type=float, default=10.0,
                        help="resync interval in seconds for the idle-write measure")
    args = parser.parse_args()
    if "KUBECONFIG" not in os.environ:
        parser.error("set KUBECONFIG to a cluster started by hack/cluster.sh")

    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds/secureredis.yaml"))
    kubectl("wait", "--for=condition=Established", "crd/secureredises.secureredis.io")
    workdir = Path(tempfile.mkdtemp(prefix="sro-bench-"))
    result = {"tier": args.tier, "single": bench_single(args.runs, args.tier, workdir)}
    if args.tier == "control-plane":
        result["many"] = bench_hundred(args.count, args.resync, workdir)
    result["operator_logs"] = str(workdir)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
