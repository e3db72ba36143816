"""Client pods and live Redis access for end-to-end tests.

Client pods run the locally built client image (redis-cli and redis-py) and
mount a user's credential Secret, as an application would. Passwords are
read inside the pod from the mounted file and never appear in argv or in a
test's output.
"""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
from dataclasses import dataclass
from typing import Any

from secureredis import names, redisadmin
from support.cluster import Cluster, wait_until

CLIENT_IMAGE = "localhost/secure-redis/client:latest"
CREDENTIALS_DIR = "/creds"


def client_pod(name: str, secret_name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"e2e-client": name, **labels}},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 999, "runAsGroup": 999,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "client",
                "image": CLIENT_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "infinity"],
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "creds", "mountPath": CREDENTIALS_DIR,
                                  "readOnly": True}],
            }],
            "volumes": [{"name": "creds", "secret": {"secretName": secret_name}}],
            "terminationGracePeriodSeconds": 1,
        },
    }


def start_client(cluster: Cluster, namespace: str, name: str, secret_name: str,
                 labels: dict[str, str]) -> str:
    cluster.apply(client_pod(name, secret_name, labels), namespace=namespace)
    cluster.wait_for_pods_ready(namespace, f"e2e-client={name}", timeout=120)
    return name


def cli(cluster: Cluster, namespace: str, pod: str, host: str, *command: str,
        timeout_seconds: int = 10) -> subprocess.CompletedProcess:
    """Run redis-cli in a client pod with the mounted user's credentials."""
    options = (f"--tls --cacert {CREDENTIALS_DIR}/ca.crt --cert {CREDENTIALS_DIR}/tls.crt "
               f"--key {CREDENTIALS_DIR}/tls.key -h {shlex.quote(host)} -p 6379 "
               f"--user \"$(cat {CREDENTIALS_DIR}/username)\" --no-auth-warning")
    script = (f'REDISCLI_AUTH="$(cat {CREDENTIALS_DIR}/password)" && export REDISCLI_AUTH && '
              f"timeout {timeout_seconds} redis-cli {options} {shlex.join(command)}")
    return cluster.exec(namespace, pod, "sh", "-c", script, timeout=timeout_seconds + 30)


# redis-py in the client pod, with host-name verification against the
# Service name the client connects to.
PYTHON_CLIENT = """
import sys, redis
d = "/creds/"
r = redis.Redis(host=sys.argv[1], port=6379, ssl=True, ssl_ca_certs=d + "ca.crt",
                ssl_certfile=d + "tls.crt", ssl_keyfile=d + "tls.key", ssl_check_hostname=True,
                username=open(d + "username").read(), password=open(d + "password").read(),
                socket_timeout=5, socket_connect_timeout=5)
r.set("app:verified", "yes")
print(r.get("app:verified").decode())
"""


def python_client(cluster: Cluster, namespace: str, pod: str, host: str):
    return cluster.exec(namespace, pod, "python3", "-c", PYTHON_CLIENT, host, timeout=60)


def tcp_reachable(cluster: Cluster, namespace: str, pod: str, host: str, port: int) -> bool:
    probe = ("import socket, sys\n"
             "s = socket.socket(); s.settimeout(4)\n"
             "sys.exit(0 if s.connect_ex((sys.argv[1], int(sys.argv[2]))) == 0 else 1)\n")
    result = cluster.exec(namespace, pod, "python3", "-c", probe, host, str(port), timeout=30)
    return result.returncode == 0


def service_host(name: str, namespace: str) -> str:
    return f"{names.client_service(name)}.{namespace}.svc.cluster.local"


@dataclass
class OperatorAccess:
    """The operator user's credentials, read from the system Secret; never printed."""

    username: str
    password: str
    cert_pem: str
    key_pem: str
    ca_pem: str
    renames: dict[str, str]

    def __repr__(self) -> str:
        return f"OperatorAccess(username={self.username!r})"


def operator_access(cluster: Cluster, namespace: str, name: str) -> OperatorAccess:
    raw = cluster.get_json("secret", "-n", namespace, names.system_secret(name))["data"]
    data = {k: base64.b64decode(v).decode() for k, v in raw.items()}
    tls = cluster.get_json("secret", "-n", namespace, names.tls_secret(name))["data"]
    return OperatorAccess(
        username=data["operator-username"], password=data["operator-password"],
        cert_pem=data["operator.crt"], key_pem=data["operator.key"],
        ca_pem=base64.b64decode(tls["ca.crt"]).decode(),
        renames=json.loads(data["renamed-commands.json"]),
    )


def pod_ip(cluster: Cluster, namespace: str, pod: str) -> str:
    return cluster.get_json("pod", "-n", namespace, pod)["status"]["podIP"]


def connect_pod(cluster: Cluster, namespace: str, name: str, ordinal: int,
                access: OperatorAccess):
    pod = f"{name}-{ordinal}"
    return redisadmin.connect(
        pod_ip(cluster, namespace, pod), 6379, ca_pem=access.ca_pem, cert_pem=access.cert_pem,
        key_pem=access.key_pem, username=access.username, password=access.password,
        server_hostname=names.pod_dns_name(name, namespace, ordinal, "cluster.local"))


def wait_ready(cluster: Cluster, namespace: str, name: str, timeout: int = 240) -> dict:
    """Wait the way kstatus-based tools do: kubectl wait on the Ready condition."""
    cluster.kubectl("-n", namespace, "wait", f"secureredis/{name}", "--for=condition=Ready",
                    f"--timeout={timeout}s", timeout=timeout + 30)
    return cluster.get_json("secureredis", "-n", namespace, name)


__all__ = ["wait_until"]
