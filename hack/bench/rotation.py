#!/usr/bin/env python3
"""Benchmark password, certificate and CA rotation under a client workload; prints JSON.

Each run starts a primary and a replica (redis-server on 127.0.0.1, from
the rendered files), then rotates passwords, the server certificate and
the CA one after the other with the harness of tests/redis/test_rotation_live.py.
The operator's own plan, converge and advance do the work, with a fake
clock moved past each grace period. During each rotation a workload runs
SET/GET as an application user on long-lived connections and on new
connections made with whatever the client Secrets hold at that moment.

Per rotation it reports:

- ``rotation_seconds``: time spent in the reconciles (plan, apply,
  converge, advance, apply), from the request until the rotation is Idle.
  Grace periods cost nothing, because the clock is moved past them.
- ``wall_seconds``: the same span including the pauses after each apply,
  in which the workload runs ``--pause-ops`` operations and
  ``--pause-connections`` new connections against what was just applied.
- ``ops``, ``failures``, ``new_connections``, ``long_lived`` and
  ``long_lived_survived`` of the workload, and ``link_down_samples``, the
  samples in which the replica's link to the primary was not up.

Usage: .venv/bin/python hack/bench/rotation.py [--runs N] [--min-ops N]
Needs the test dependencies (hack/python-env.sh) and redis-server on PATH.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "redis"))

from secureredis import rotation  # noqa: E402

from rotation_harness import Rig, Workload  # noqa: E402

KINDS = (rotation.PASSWORDS, rotation.CERTIFICATES, rotation.CA)


def measure(rig: Rig, kind: str, run: int, args: argparse.Namespace) -> dict:
    """Rotate ``kind`` once under a fresh workload and return its numbers."""
    with Workload(rig.deployment, rig.publisher) as workload:
        report = rig.rotate_under_load(kind, workload, request=f"bench-{kind}-{run}",
                                       min_ops=args.min_ops, pause_ops=args.pause_ops,
                                       pause_connections=args.pause_connections)
    by_phase = workload.ops_by_phase()
    during = sum(count for phase, count in by_phase.items() if phase.startswith(f"{kind}:"))
    return {
        "kind": kind,
        "run": run,
        "phases": report.phases,
        "reconciles": report.reconciles,
        "rotation_seconds": round(report.busy_seconds, 3),
        "wall_seconds": round(report.wall_seconds, 3),
        "ops": workload.ops,
        "ops_during_rotation": during,
        "failures": workload.failure_count,
        "failure_examples": workload.failures[:5],
        "new_connections": workload.connections,
        "long_lived": workload.long_lived,
        "long_lived_survived": workload.survivors,
        "link_samples": workload.link_samples,
        "link_down_samples": workload.link_down_samples,
    }


def summarize(results: list[dict]) -> dict:
    """Return, per kind, the median and range of rotation_seconds and the summed counts."""
    summary = {}
    for kind in KINDS:
        rows = [row for row in results if row["kind"] == kind]
        seconds = [row["rotation_seconds"] for row in rows]
        summary[kind] = {
            "runs": len(rows),
            "rotation_seconds_median": round(statistics.median(seconds), 3),
            "rotation_seconds_min": min(seconds),
            "rotation_seconds_max": max(seconds),
            "ops": sum(row["ops"] for row in rows),
            "failures": sum(row["failures"] for row in rows),
            "long_lived_lost": sum(row["long_lived"] - row["long_lived_survived"]
                                   for row in rows),
            "link_down_samples": sum(row["link_down_samples"] for row in rows),
        }
    return summary


def redis_version() -> str:
    output = subprocess.run(["redis-server", "--version"], capture_output=True, text=True,
                            check=True).stdout
    return next((word.split("=", 1)[1] for word in output.split() if word.startswith("v=")),
                output.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3,
                        help="rotations of each kind, each run on a new primary and replica "
                             "(default 3)")
    parser.add_argument("--min-ops", type=int, default=20_000,
                        help="operations each workload runs at least (default 20000)")
    parser.add_argument("--pause-ops", type=int, default=1_000,
                        help="operations the workload runs after each apply (default 1000)")
    parser.add_argument("--pause-connections", type=int, default=10,
                        help="new connections the workload makes after each apply (default 10)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    results = []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="rotation-bench-") as directory:
            rig = Rig(Path(directory))
            try:
                rig.start()
                for kind in KINDS:
                    results.append(measure(rig, kind, run, args))
            finally:
                rig.stop()

    print(json.dumps({
        "redis_server": redis_version(),
        "python": platform.python_version(),
        "settings": vars(args),
        "summary": summarize(results),
        "results": results,
    }, indent=2))
    failed = any(row["failures"] or row["link_down_samples"]
                 or row["long_lived_survived"] != row["long_lived"] for row in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
