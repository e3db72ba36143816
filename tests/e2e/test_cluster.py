"""Redis Cluster mode on a real node: bootstrap, clients, isolation, failover, scaling."""

from __future__ import annotations

import json

import pytest

from secureredis import names
from support.cluster import wait_until
from support.operator import condition, get, secure_redis

from e2e_helpers import (pod_ip, service_host, start_client, tcp_reachable, wait_ready)

pytestmark = pytest.mark.node

NAME = "events"
USER = "events_app"
SPEC = {
    "mode": "cluster",
    "cluster": {"shards": 3, "replicasPerShard": 1},
    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
    "acl": {"users": [{"name": USER, "rules": ["~app:*", "+@read", "+@write", "+@connection",
                                             "+cluster|slots", "+cluster|shards"]}]},
}
CLIENT_LABEL = {names.client_label(NAME): "true"}

# A small cluster-aware client for the client pod: it follows MOVED replies to
# the announced pod host names and verifies every certificate by host name.
# It prints one JSON line: how many keys it wrote and read back correctly.
CLUSTER_CLIENT = r"""
import json, sys, redis
d = "/creds/"
user, password = open(d + "username").read(), open(d + "password").read()
mode, count = sys.argv[2], int(sys.argv[3])
nodes = {}
def node(host):
    if host not in nodes:
        nodes[host] = redis.Redis(host=host, port=6379, ssl=True, ssl_ca_certs=d + "ca.crt",
            ssl_certfile=d + "tls.crt", ssl_keyfile=d + "tls.key", ssl_check_hostname=True,
            username=user, password=password, socket_timeout=5, socket_connect_timeout=5)
    return nodes[host]
def call(*args):
    host = sys.argv[1]
    for _ in range(5):
        try:
            return node(host).execute_command(*args)
        except redis.ResponseError as error:
            parts = str(error).split()
            if parts and parts[0] in ("MOVED", "ASK"):
                host = parts[2].rsplit(":", 1)[0]
                continue
            raise
    raise RuntimeError("too many redirections")
good = 0
for i in range(count):
    key, value = f"app:{{k{i}}}", f"v{i}"
    if mode == "write":
        call("SET", key, value)
    if call("GET", key) == value.encode():
        good += 1
print(json.dumps({"good": good, "hosts": sorted(nodes)}))
"""


def run_client(cluster, namespace, pod, mode: str, count: int) -> dict:
    result = cluster.exec(namespace, pod, "python3", "-c", CLUSTER_CLIENT,
                          service_host(NAME, namespace), mode, str(count), timeout=300)
    assert result.returncode == 0, result.stderr[-600:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def deployed(node_cluster, namespace, operator):
    node_cluster.apply(secure_redis(NAME, SPEC), namespace=namespace)
    return wait_ready(node_cluster, namespace, NAME, timeout=600)


@pytest.fixture
def client(node_cluster, namespace, deployed):
    return start_client(node_cluster, namespace, "app", names.user_secret(NAME, USER),
                        CLIENT_LABEL)


def cluster_healthy(cluster, namespace) -> bool:
    obj = get(cluster, namespace, "secureredis", NAME)
    healthy = condition(obj, "ClusterHealthy")
    ready = condition(obj, "Ready")
    return bool(healthy and healthy["status"] == "True" and ready and ready["status"] == "True")


def health_report(cluster, namespace) -> str:
    """Return the conditions and cluster status of the SecureRedis, for a failure message."""
    status = get(cluster, namespace, "secureredis", NAME).get("status") or {}
    conditions = {c["type"]: f"{c['status']} {c.get('reason', '')}: {c.get('message', '')}"
                  for c in status.get("conditions") or []}
    return json.dumps({"conditions": conditions, "cluster": status.get("cluster")})


def test_cluster_ready_and_healthy(deployed):
    assert condition(deployed, "ClusterHealthy")["status"] == "True"
    assert deployed["status"]["checks"]["failed"] == []
    assert deployed["status"]["checks"]["passed"] == deployed["status"]["checks"]["total"]


def test_client_uses_every_shard(node_cluster, namespace, client):
    result = run_client(node_cluster, namespace, client, "write", 300)

    assert result["good"] == 300
    # Every key is written through the node that owns its slot, reached by
    # its verified pod host name.
    primaries = [h for h in result["hosts"] if h.endswith(".svc.cluster.local")]
    assert len(primaries) >= 3


def test_unlabelled_pod_reaches_no_port(node_cluster, namespace, deployed):
    stranger = start_client(node_cluster, namespace, "stranger", names.user_secret(NAME, USER),
                            {})
    address = pod_ip(node_cluster, namespace, f"{NAME}-0")

    assert tcp_reachable(node_cluster, namespace, stranger, address, 6379) is False
    assert tcp_reachable(node_cluster, namespace, stranger, address, 16379) is False


def test_primary_loss_recovers(node_cluster, namespace, client, operator):
    assert run_client(node_cluster, namespace, client, "write", 200)["good"] == 200

    node_cluster.kubectl("-n", namespace, "delete", "pod", f"{NAME}-0", "--wait=false")
    wait_until(lambda: not cluster_healthy(node_cluster, namespace), 60,
               message="the cluster notices the lost primary")
    try:
        wait_until(lambda: cluster_healthy(node_cluster, namespace), 300, interval=3,
                   message="the cluster is healthy again")
    except TimeoutError as timeout:
        steps = [line for line in operator.log().splitlines()
                 if namespace in line and ("cluster" in line or "WARNING" in line)]
        raise AssertionError(f"{timeout}; last status: {health_report(node_cluster, namespace)}; "
                             "operator's last cluster lines:\n" + "\n".join(steps[-30:]))

    assert run_client(node_cluster, namespace, client, "read", 200)["good"] == 200


def test_scale_out_and_back_keeps_keys(node_cluster, namespace, client):
    assert run_client(node_cluster, namespace, client, "write", 300)["good"] == 300

    for shards, pods in ((4, 8), (3, 6)):
        patch = json.dumps({"spec": {"cluster": {"shards": shards}}})
        node_cluster.kubectl("-n", namespace, "patch", "secureredis", NAME, "--type=merge",
                             "-p", patch)
        wait_until(lambda: _settled(node_cluster, namespace, pods), 600, interval=5,
                   message=f"cluster settled at {shards} shards")
        assert run_client(node_cluster, namespace, client, "read", 300)["good"] == 300


def _settled(cluster, namespace, pods: int) -> bool:
    obj = get(cluster, namespace, "secureredis", NAME)
    statefulset = get(cluster, namespace, "statefulset", NAME)
    return (cluster_healthy(cluster, namespace)
            and obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
            and statefulset["spec"]["replicas"] == pods
            and (statefulset.get("status") or {}).get("readyReplicas") == pods)
