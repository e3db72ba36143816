"""Rotation on a real node, driven by the operator, under a client workload.

A client pod mounts its user Secret and runs a workload for the whole
rotation: one connection opened before the rotation that is never
reopened, and new connections that read the mounted Secret each time, as
an application that reloads its credentials does. Midway the operator is
killed and restarted. Every operation must succeed.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from secureredis import names, rotation
from support.cluster import wait_until
from support.operator import get, secure_redis

from e2e_helpers import service_host, start_client, wait_ready

pytestmark = pytest.mark.node

NAME = "rotating"
USER = "app"
# The shortest grace period the API allows: the kubelet refreshes a mounted
# Secret within about a minute, well inside it.
GRACE = "2m"
SPEC = {
    "mode": "replication",
    "replicas": 2,
    "acl": {"users": [{"name": USER, "rules": ["~app:*", "+@read", "+@write", "+ping"]}],
            "rotation": {"gracePeriod": GRACE}},
}

WORKLOAD = r"""
import json, sys, time, redis
d = "/creds/"
host, seconds = sys.argv[1], float(sys.argv[2])
def connect():
    return redis.Redis(host=host, port=6379, ssl=True, ssl_ca_certs=d + "ca.crt",
                       ssl_certfile=d + "tls.crt", ssl_keyfile=d + "tls.key",
                       ssl_check_hostname=True, username=open(d + "username").read(),
                       password=open(d + "password").read(), socket_timeout=10,
                       socket_connect_timeout=10)
long_lived = connect()
long_lived.ping()
operations = failures = connections = 0
errors = []
client = None
end = time.time() + seconds
i = 0
while time.time() < end:
    try:
        if i % 25 == 0:
            client = connect()
            connections += 1
        client.set(f"app:k{i % 50}", i)
        if client.get(f"app:k{i % 50}") != str(i).encode():
            raise ValueError("read back a different value")
        long_lived.set("app:long", i)
        operations += 3
    except Exception as error:
        failures += 1
        errors.append(f"{type(error).__name__}: {str(error)[:120]}")
        client = None
        i = (i // 25 + 1) * 25 - 1
    i += 1
print(json.dumps({"operations": operations, "failures": failures, "connections": connections,
                  "errors": errors[:10]}))
"""


def run_workload(cluster, namespace, pod, seconds: float, results: dict) -> None:
    completed = cluster.exec(namespace, pod, "python3", "-c", WORKLOAD,
                             service_host(NAME, namespace), str(seconds),
                             timeout=seconds + 120)
    results["returncode"] = completed.returncode
    results["stderr"] = completed.stderr[-600:]
    if completed.returncode == 0:
        results.update(json.loads(completed.stdout.strip().splitlines()[-1]))


def rotation_state(cluster, namespace, kind: str) -> dict:
    status = get(cluster, namespace, "secureredis", NAME).get("status") or {}
    return next((e for e in status.get("rotations") or [] if e["kind"] == kind), {})


def request(cluster, namespace, annotation: str) -> str:
    token = str(int(time.time()))
    cluster.kubectl("-n", namespace, "annotate", "secureredis", NAME, f"{annotation}={token}",
                    "--overwrite")
    return token


def rotate_under_load(cluster, namespace, operator, kind: str, annotation: str,
                      kill_in_phase: str, seconds: float) -> dict:
    pod = start_client(cluster, namespace, "workload", names.user_secret(NAME, USER),
                       {names.client_label(NAME): "true"})
    results: dict = {}
    worker = threading.Thread(target=run_workload,
                              args=(cluster, namespace, pod, seconds, results))
    worker.start()
    time.sleep(10)

    started = time.time()
    request(cluster, namespace, annotation)
    wait_until(lambda: rotation_state(cluster, namespace, kind).get("phase") == kill_in_phase,
               240, interval=1, message=f"{kind} rotation in phase {kill_in_phase}")
    operator.kill()
    time.sleep(5)
    operator.start()

    def completed() -> bool:
        entry = rotation_state(cluster, namespace, kind)
        return (entry.get("phase") == rotation.IDLE
                and entry.get("completedAt", "") >= time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                  time.gmtime(started)))

    wait_until(completed, 600, interval=2, message=f"{kind} rotation completed")
    worker.join(timeout=seconds + 180)
    return results


@pytest.fixture
def deployed(node_cluster, namespace, operator):
    node_cluster.apply(secure_redis(NAME, SPEC), namespace=namespace)
    return wait_ready(node_cluster, namespace, NAME)


def test_password_rotation_no_failures(node_cluster, namespace, operator, deployed):
    before = get(node_cluster, namespace, "secret", names.user_secret(NAME, USER))["data"]

    results = rotate_under_load(node_cluster, namespace, operator, rotation.PASSWORDS,
                                rotation.ROTATE_PASSWORDS_ANNOTATION, "Published", 260)

    after = get(node_cluster, namespace, "secret", names.user_secret(NAME, USER))["data"]
    assert results.get("returncode") == 0, results.get("stderr")
    assert results["failures"] == 0, results["errors"]
    assert results["operations"] > 1000
    assert after["password"] != before["password"]
    wait_ready(node_cluster, namespace, NAME)


def test_certificate_rotation_no_failures(node_cluster, namespace, operator, deployed):
    serial_before = deployed["status"]["tls"]["serial"]

    results = rotate_under_load(node_cluster, namespace, operator, rotation.CERTIFICATES,
                                rotation.ROTATE_CERTIFICATES_ANNOTATION, "Reloading", 200)

    status = get(node_cluster, namespace, "secureredis", NAME)["status"]
    assert results.get("returncode") == 0, results.get("stderr")
    assert results["failures"] == 0, results["errors"]
    assert results["operations"] > 1000
    assert status["tls"]["serial"] != serial_before
    wait_ready(node_cluster, namespace, NAME)


def test_ca_rotation_no_failures(node_cluster, namespace, operator, deployed):
    ca_before = get(node_cluster, namespace, "secret", names.tls_secret(NAME))["data"]["ca.crt"]

    results = rotate_under_load(node_cluster, namespace, operator, rotation.CA,
                                rotation.ROTATE_CA_ANNOTATION, "Reissued", 480)

    ca_after = get(node_cluster, namespace, "secret", names.tls_secret(NAME))["data"]["ca.crt"]
    assert results.get("returncode") == 0, results.get("stderr")
    assert results["failures"] == 0, results["errors"]
    assert results["operations"] > 1000
    assert ca_after != ca_before
    wait_ready(node_cluster, namespace, NAME)
