"""Smoke tests of the node tier: pods run, Services and DNS work,
NetworkPolicy is enforced both ways and the garbage collector collects."""

import pytest

from support import cluster as clusters

pytestmark = pytest.mark.node

CLIENT_IMAGE = "localhost/secure-redis/client:latest"
HTTP_PORT = 8080

RESTRICTED = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def pod(name, labels=None, command=None, image=CLIENT_IMAGE, owner=None):
    """A Pod running the client image; by default it only sleeps."""
    metadata = {"name": name, "labels": labels or {}}
    if owner:
        metadata["ownerReferences"] = [owner]
    container = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "securityContext": RESTRICTED,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if command:
        container["command"] = command
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }


def http_server(name, labels):
    """A Pod serving HTTP on HTTP_PORT, Ready only once the port accepts connections."""
    manifest = pod(name, labels, ["python3", "-m", "http.server", str(HTTP_PORT), "--directory", "/tmp"])
    manifest["spec"]["containers"][0]["readinessProbe"] = {
        "tcpSocket": {"port": HTTP_PORT},
        "periodSeconds": 1,
    }
    return manifest


def pod_ip(cluster, namespace, name):
    return cluster.get_json("pod", name, "-n", namespace)["status"]["podIP"]


def can_fetch(cluster, namespace, client, url):
    """True if the client pod gets an HTTP response from url within 3 s."""
    script = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=3)"
    return cluster.exec(namespace, client, "python3", "-c", script).returncode == 0


def start_pods(cluster, namespace, *pods):
    cluster.apply(list(pods), namespace=namespace)
    for item in pods:
        cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", f"pod/{item['metadata']['name']}", "--timeout=120s")


def test_pod_runs_as_its_image_user(node_cluster, namespace):
    start_pods(node_cluster, namespace, pod("hello"))
    result = node_cluster.exec(namespace, "hello", "id", "-u")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "999"


@pytest.mark.parametrize(
    ("image", "server", "cli", "version_line"),
    [
        ("localhost/secure-redis/redis:7.0", "redis-server", "redis-cli", "redis_version:7.0."),
        ("localhost/secure-redis/redis:8.0", "redis-server", "redis-cli", "redis_version:8.0."),
        ("localhost/secure-redis/valkey:8.1", "valkey-server", "valkey-cli", "valkey_version:8.1."),
    ],
    ids=["redis-7.0", "redis-8.0", "valkey-8.1"],
)
def test_redis_image_serves(node_cluster, namespace, image, server, cli, version_line):
    # Loopback only: the test reaches the server through kubectl exec.
    command = [server, "--bind", "127.0.0.1", "--port", "6379", "--dir", "/tmp", "--save", ""]
    start_pods(node_cluster, namespace, pod("db", image=image, command=command))

    clusters.wait_until(
        lambda: node_cluster.exec(namespace, "db", cli, "ping").stdout.strip() == "PONG",
        30,
        message=f"{server} answers PONG",
    )
    info = node_cluster.exec(namespace, "db", cli, "info", "server").stdout
    assert any(line.startswith(version_line) for line in info.splitlines()), info
    assert node_cluster.exec(namespace, "db", "id", "-u").stdout.strip() == "999"


def test_service_and_headless_dns(node_cluster, namespace):
    node_cluster.apply([
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": HTTP_PORT}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web-headless"},
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": {"app": "web"},
                "ports": [{"port": HTTP_PORT}],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "web"},
            "spec": {
                "serviceName": "web-headless",
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": http_server("unused", {"app": "web"})["spec"],
                },
            },
        },
    ], namespace=namespace)
    start_pods(node_cluster, namespace, pod("client"))
    node_cluster.wait_for_pods_ready(namespace, "app=web")

    service_ip = node_cluster.get_json("service", "web", "-n", namespace)["spec"]["clusterIP"]
    web_0_ip = pod_ip(node_cluster, namespace, "web-0")
    lookups = {
        f"web.{namespace}.svc.cluster.local": service_ip,
        f"web-0.web-headless.{namespace}.svc.cluster.local": web_0_ip,
    }
    for name, expected in lookups.items():
        script = f"import socket; print(socket.gethostbyname({name!r}))"
        clusters.wait_until(
            lambda: node_cluster.exec(namespace, "client", "python3", "-c", script).stdout.strip() == expected,
            30,
            message=f"{name} resolves to {expected}",
        )

    # The short name works through the search path, and kube-proxy forwards
    # the Service port to the pod. It programs the rules a moment after the
    # endpoints appear, so the first requests may still find no route.
    clusters.wait_until(lambda: can_fetch(node_cluster, namespace, "client", "http://web/"), 30,
                        message="the Service forwards http://web/ to web-0")
    assert can_fetch(node_cluster, namespace, "client", f"http://web-0.web-headless:{HTTP_PORT}/")


def test_network_policy_ingress(node_cluster, namespace):
    start_pods(
        node_cluster,
        namespace,
        http_server("server", {"app": "server"}),
        pod("granted", {"access": "granted"}),
        pod("stranger"),
    )
    url = f"http://{pod_ip(node_cluster, namespace, 'server')}:{HTTP_PORT}/"
    assert can_fetch(node_cluster, namespace, "stranger", url), "open before any policy"

    node_cluster.apply({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "server-ingress"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "server"}},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{"podSelector": {"matchLabels": {"access": "granted"}}}],
                "ports": [{"port": HTTP_PORT}],
            }],
        },
    }, namespace=namespace)

    clusters.wait_until(
        lambda: not can_fetch(node_cluster, namespace, "stranger", url),
        60,
        message="the unlabelled pod is blocked",
    )
    assert can_fetch(node_cluster, namespace, "granted", url)


def test_network_policy_egress(node_cluster, namespace):
    start_pods(
        node_cluster,
        namespace,
        http_server("permitted", {"egress-target": "yes"}),
        http_server("other", {}),
        pod("client", {"egress": "restricted"}),
    )
    permitted = f"http://{pod_ip(node_cluster, namespace, 'permitted')}:{HTTP_PORT}/"
    other = f"http://{pod_ip(node_cluster, namespace, 'other')}:{HTTP_PORT}/"
    assert can_fetch(node_cluster, namespace, "client", other), "open before any policy"

    node_cluster.apply({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "client-egress"},
        "spec": {
            "podSelector": {"matchLabels": {"egress": "restricted"}},
            "policyTypes": ["Egress"],
            "egress": [{
                "to": [{"podSelector": {"matchLabels": {"egress-target": "yes"}}}],
                "ports": [{"port": HTTP_PORT}],
            }],
        },
    }, namespace=namespace)

    clusters.wait_until(
        lambda: not can_fetch(node_cluster, namespace, "client", other),
        60,
        message="egress to the unlabelled pod is blocked",
    )
    assert can_fetch(node_cluster, namespace, "client", permitted)


def test_deleting_owner_collects_children(node_cluster, namespace):
    node_cluster.kubectl("create", "configmap", "owner", "-n", namespace)
    owner = node_cluster.get_json("configmap", "owner", "-n", namespace)["metadata"]
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["uid"]}
    child_secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "child", "ownerReferences": [reference]},
        "stringData": {"note": "not a secret"},
    }
    node_cluster.apply(child_secret, namespace=namespace)
    start_pods(node_cluster, namespace, pod("child", owner=reference))

    node_cluster.kubectl("delete", "configmap", "owner", "-n", namespace)

    clusters.wait_until(
        lambda: not node_cluster.exists("secret", "child", "-n", namespace),
        60,
        message="the child Secret is collected",
    )
    clusters.wait_until(
        lambda: not node_cluster.exists("pod", "child", "-n", namespace),
        90,
        message="the child Pod is collected",
    )
