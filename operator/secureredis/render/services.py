"""Services: the client Service, the replicas' read-only Service and the headless one."""

from __future__ import annotations

from .. import names
from ..spec import SecureRedis
from .meta import metadata

ROLE_LABEL = "secureredis.io/role"


def _port(name: str, port: int) -> dict:
    return {"name": name, "port": port, "targetPort": port, "protocol": "TCP"}


def client_service(sr: SecureRedis) -> dict:
    """Return the Service clients use; in replication mode it selects only the primary."""
    selector = names.selector_labels(sr.name)
    if sr.mode == "replication":
        selector = {**selector, ROLE_LABEL: "primary"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(sr, names.client_service(sr.name), "server"),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [_port("redis-tls", names.CLIENT_PORT)],
        },
    }


def replicas_service(sr: SecureRedis) -> dict:
    """Return the read-only Service that selects the replicas in replication mode."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(sr, names.replicas_service(sr.name), "server"),
        "spec": {
            "type": "ClusterIP",
            "selector": {**names.selector_labels(sr.name), ROLE_LABEL: "replica"},
            "ports": [_port("redis-tls", names.CLIENT_PORT)],
        },
    }


def headless_service(sr: SecureRedis) -> dict:
    """Return the headless Service that gives each pod a DNS name, ready or not."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(sr, names.headless_service(sr.name), "server"),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": names.selector_labels(sr.name),
            "ports": [_port("redis-tls", names.CLIENT_PORT), _port("cluster-bus", names.BUS_PORT)],
        },
    }
