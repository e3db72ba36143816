"""StatefulSet: the Redis pods, locked down.

Pods run as a non-root user with a read-only root filesystem, no privilege
escalation, no capabilities and the runtime's default seccomp profile, and
get no ServiceAccount token. Certificates are mounted as whole Secret volumes
(never ``subPath``) so a renewed certificate reaches a running pod and can be
reloaded with CONFIG SET.

Probes run redis-cli over TLS as the probe user. The password travels in the
``REDISCLI_AUTH`` environment variable, never in argv; every option comes
before the command, and the probe passes only on the exact reply ``PONG``.
The probe reads the password from a mounted Secret file on every run rather
than from an environment variable fixed at pod start, so a rotated probe
password reaches running pods.
"""

from __future__ import annotations

import shlex

from .. import acl, names, redisconf
from ..material import Material
from ..spec import SecureRedis
from .meta import metadata
from .services import ROLE_LABEL

# The uid/gid of the redis user in the images built under hack/.
REDIS_UID = 999
CONFIG_HASH_ANNOTATION = "secureredis.io/config-hash"
PATHS = redisconf.POD_PATHS
CONF_DIR = "/etc/redis/conf"


def probe_command(sr: SecureRedis, paths: redisconf.Paths = PATHS,
                  port: int = names.CLIENT_PORT) -> list[str]:
    """Return the exec probe: PING over mutual TLS as the probe user, expecting PONG.

    ``paths`` and ``port`` default to the pod's. Tests pass their own to run
    the same command against a local redis-server.
    """
    cli = [
        sr.engine.cli_binary,
        "--tls",
        "--cacert", paths.ca_file,
        "--cert", paths.cert_file,
        "--key", paths.key_file,
        "-h", "127.0.0.1",
        "-p", str(port),
        "--user", acl.SYSTEM_USER_PREFIX + "probe",
        "--no-auth-warning",
        "PING",
    ]
    variables = ["REDISCLI_AUTH"]
    if sr.engine.flavor == "valkey":
        variables.append("VALKEYCLI_AUTH")
    password_file = shlex.quote(paths.probe_password_file)
    load = " && ".join(f'{name}="$(cat {password_file})" && export {name}' for name in variables)
    script = f'{load} && reply="$({shlex.join(cli)})" && [ "$reply" = PONG ]'
    return ["sh", "-c", script]


def server_args(sr: SecureRedis) -> list[str]:
    """Return redis-server's arguments; Kubernetes expands ``$(POD_IP)`` and ``$(POD_NAME)``."""
    args = [f"{CONF_DIR}/redis.conf", "--bind", "$(POD_IP)", "127.0.0.1", "-::1"]
    if sr.mode == "cluster":
        hostname = (f"$(POD_NAME).{names.headless_service(sr.name)}.{sr.namespace}.svc."
                    f"{sr.cluster_domain}")
        args += ["--cluster-announce-hostname", hostname]
    if sr.mode == "replication":
        # Every pod starts as a replica of the client Service, which selects
        # only the labelled primary. A primary that restarts empty thus waits
        # as a replica instead of handing its empty data set to the others.
        service = f"{names.client_service(sr.name)}.{sr.namespace}.svc.{sr.cluster_domain}"
        args += ["--replicaof", service, str(names.CLIENT_PORT)]
    return args


def _container_security_context() -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": REDIS_UID,
        "runAsGroup": REDIS_UID,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def redis_container(sr: SecureRedis) -> dict:
    probe = {"exec": {"command": probe_command(sr)}, "timeoutSeconds": 5}
    return {
        "name": "redis",
        "image": sr.pod.image,
        "imagePullPolicy": sr.pod.image_pull_policy,
        "command": [sr.engine.server_binary],
        "args": server_args(sr),
        "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "ports": [
            {"name": "redis-tls", "containerPort": names.CLIENT_PORT, "protocol": "TCP"},
            {"name": "cluster-bus", "containerPort": names.BUS_PORT, "protocol": "TCP"},
        ],
        "resources": dict(sr.pod.resources),
        "securityContext": _container_security_context(),
        "volumeMounts": [
            {"name": "config", "mountPath": CONF_DIR, "readOnly": True},
            {"name": "acl", "mountPath": PATHS.acl_file.rsplit("/", 1)[0], "readOnly": True},
            {"name": "tls", "mountPath": PATHS.tls_dir, "readOnly": True},
            {"name": "private", "mountPath": PATHS.private_conf.rsplit("/", 1)[0],
             "readOnly": True},
            {"name": "data", "mountPath": PATHS.data_dir},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        # Loading a large dataset can take minutes; the startup probe allows
        # 5 minutes before the liveness probe starts counting.
        "startupProbe": {**probe, "periodSeconds": 5, "failureThreshold": 60},
        "readinessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 15, "failureThreshold": 4},
    }


def exporter_container(sr: SecureRedis) -> dict:
    """Return the redis_exporter sidecar, authenticated as the exporter user over mTLS."""
    secret = names.system_secret(sr.name)
    return {
        "name": "exporter",
        "image": sr.metrics.image,
        "imagePullPolicy": sr.pod.image_pull_policy,
        "env": [
            {"name": "REDIS_ADDR", "value": f"rediss://127.0.0.1:{names.CLIENT_PORT}"},
            {"name": "REDIS_USER", "value": acl.SYSTEM_USER_PREFIX + "exporter"},
            # TODO: read the password from a mounted file, as the probe does; an
            # env var keeps the old password after a rotation until the pod restarts.
            {"name": "REDIS_PASSWORD",
             "valueFrom": {"secretKeyRef": {"name": secret, "key": "exporter-password"}}},
            {"name": "REDIS_EXPORTER_TLS_CLIENT_CERT_FILE", "value": PATHS.cert_file},
            {"name": "REDIS_EXPORTER_TLS_CLIENT_KEY_FILE", "value": PATHS.key_file},
            {"name": "REDIS_EXPORTER_TLS_CA_CERT_FILE", "value": PATHS.ca_file},
            {"name": "REDIS_EXPORTER_WEB_LISTEN_ADDRESS", "value": f":{sr.metrics.port}"},
            # The exporter's CONFIG GET goes through the renamed name, which it
            # cannot know; it still reports everything INFO provides.
            {"name": "REDIS_EXPORTER_CONFIG_COMMAND", "value": "-"},
        ],
        "ports": [{"name": "metrics", "containerPort": sr.metrics.port, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                      "limits": {"memory": "64Mi"}},
        "securityContext": _container_security_context(),
        "volumeMounts": [{"name": "tls", "mountPath": PATHS.tls_dir, "readOnly": True}],
    }


def _volumes(sr: SecureRedis) -> list[dict]:
    volumes = [
        {"name": "config", "configMap": {"name": names.config_map(sr.name)}},
        {"name": "acl", "configMap": {"name": names.acl_config_map(sr.name)}},
        # 0440 with fsGroup: readable by the redis group, never world-readable.
        {"name": "tls", "secret": {"secretName": names.tls_secret(sr.name), "defaultMode": 0o440}},
        {"name": "private", "secret": {
            "secretName": names.system_secret(sr.name),
            "items": [{"key": "private.conf", "path": "private.conf"},
                      {"key": "probe-password", "path": "probe-password"}],
            "defaultMode": 0o440,
        }},
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
    ]
    if sr.storage.persistence == "none":
        volumes.append({"name": "data", "emptyDir": {}})
    return volumes


def _volume_claim_templates(sr: SecureRedis) -> list[dict]:
    spec = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": sr.storage.size}},
    }
    if sr.storage.storage_class_name:
        spec["storageClassName"] = sr.storage.storage_class_name
    return [{
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "labels": names.selector_labels(sr.name)},
        "spec": spec,
    }]


def pod_template(sr: SecureRedis, material: Material) -> dict:
    labels = {**sr.pod.labels, **names.common_labels(sr.name, "server")}
    if sr.mode == "replication":
        # The operator moves the role label when it fails over; new pods
        # start as replicas until it has checked the topology.
        labels.setdefault(ROLE_LABEL, "replica")
    annotations = {**sr.pod.annotations,
                   CONFIG_HASH_ANNOTATION: redisconf.config_hash(sr, material)}

    containers = [redis_container(sr)]
    if sr.metrics.enabled:
        containers.append(exporter_container(sr))

    spec: dict = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": REDIS_UID,
            "runAsGroup": REDIS_UID,
            "fsGroup": REDIS_UID,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": containers,
        "volumes": _volumes(sr),
    }
    if sr.pod.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in sr.pod.image_pull_secrets]
    if sr.pod.node_selector:
        spec["nodeSelector"] = dict(sr.pod.node_selector)
    if sr.pod.tolerations:
        spec["tolerations"] = [dict(t) for t in sr.pod.tolerations]
    if sr.pod.affinity:
        spec["affinity"] = dict(sr.pod.affinity)
    if sr.pod.topology_spread_constraints:
        spec["topologySpreadConstraints"] = [dict(t) for t in sr.pod.topology_spread_constraints]
    if sr.pod.priority_class_name:
        spec["priorityClassName"] = sr.pod.priority_class_name

    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec}


def statefulset(sr: SecureRedis, material: Material, *, replicas: int | None = None) -> dict:
    spec: dict = {
        "serviceName": names.headless_service(sr.name),
        "replicas": max(sr.pod_count, replicas or 0),
        # Redis pods do not depend on each other to start; the operator wires
        # replication and the cluster after they are up.
        "podManagementPolicy": "Parallel",
        "selector": {"matchLabels": names.selector_labels(sr.name)},
        "updateStrategy": {"type": "RollingUpdate"},
        "template": pod_template(sr, material),
    }
    if sr.storage.persistence != "none":
        spec["volumeClaimTemplates"] = _volume_claim_templates(sr)
        spec["persistentVolumeClaimRetentionPolicy"] = {
            "whenDeleted": "Delete" if sr.storage.delete_claims_with_resource else "Retain",
            "whenScaled": "Retain",
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(sr, names.statefulset(sr.name), "server"),
        "spec": spec,
    }
