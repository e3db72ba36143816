"""Deterministic names and labels of every child of a SecureRedis.

Names depend only on the SecureRedis name (and a user's name), so a lost
child is found again and re-created under the same name.
"""

from __future__ import annotations

from . import FIELD_MANAGER
from .acl import secret_suffix

CLIENT_PORT = 6379
BUS_PORT = 16379
PART_OF = "secure-redis"


def config_map(name: str) -> str:
    return f"{name}-config"


def acl_config_map(name: str) -> str:
    return f"{name}-acl"


def ca_secret(name: str) -> str:
    return f"{name}-ca"


def tls_secret(name: str) -> str:
    return f"{name}-tls"


def system_secret(name: str) -> str:
    return f"{name}-system"


def user_secret(name: str, user: str) -> str:
    return f"{name}-user-{secret_suffix(user)}"


def client_service(name: str) -> str:
    return name


def replicas_service(name: str) -> str:
    return f"{name}-replicas"


def headless_service(name: str) -> str:
    return f"{name}-headless"


def statefulset(name: str) -> str:
    return name


def network_policy(name: str) -> str:
    return name


def pdb(name: str) -> str:
    return name


def client_label(name: str) -> str:
    """Return the pod label key that admits a pod as a client of this SecureRedis."""
    return f"secureredis.io/client-{name}"


def selector_labels(name: str) -> dict[str, str]:
    """Return the labels that select this SecureRedis's Redis pods."""
    return {
        "app.kubernetes.io/name": "redis",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
    }


def common_labels(name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "redis",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
    }


def service_dns_names(name: str, namespace: str, cluster_domain: str) -> tuple[str, ...]:
    """Return every DNS name a client or peer may use to reach this SecureRedis."""
    names = []
    for service in (client_service(name), replicas_service(name), headless_service(name)):
        names += [service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
                  f"{service}.{namespace}.svc.{cluster_domain}"]
    headless = headless_service(name)
    names += [f"*.{headless}.{namespace}.svc", f"*.{headless}.{namespace}.svc.{cluster_domain}"]
    names.append("localhost")
    return tuple(names)


def pod_dns_name(name: str, namespace: str, ordinal: int, cluster_domain: str) -> str:
    return f"{statefulset(name)}-{ordinal}.{headless_service(name)}.{namespace}.svc.{cluster_domain}"
