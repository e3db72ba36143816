"""Pure builders: a SecureRedis plus its material in, Kubernetes objects out.

``render_all`` returns every child in the order it should be applied:
configuration and Secrets before the StatefulSet that mounts them, the
NetworkPolicy before any pod exists. Each builder only returns the fields the
operator owns, which is what server-side apply needs to send.
"""

from __future__ import annotations

from ..material import Material
from ..spec import SecureRedis
from .config import acl_config_map, redis_config_map
from .context import RenderContext
from .network import network_policy
from .pdb import pod_disruption_budget
from .secrets import ca_secret, system_secret, tls_secret, user_secrets
from .services import client_service, headless_service, replicas_service
from .statefulset import statefulset

__all__ = ["RenderContext", "render_all"]


def render_all(sr: SecureRedis, material: Material, context: RenderContext | None = None, *,
               replicas: int | None = None) -> list[dict]:
    """Return every child object of ``sr``.

    ``replicas`` overrides the StatefulSet size when it must stay above the
    spec's, such as while a Redis Cluster shard being removed still owns slots.
    """
    context = context or RenderContext()
    children: list[dict] = [
        redis_config_map(sr),
        acl_config_map(sr, material),
        ca_secret(sr, material),
        tls_secret(sr, material),
        system_secret(sr, material),
        *user_secrets(sr, material),
    ]
    if sr.network_policy.enabled:
        children.append(network_policy(sr, context))
    children.append(headless_service(sr))
    children.append(client_service(sr))
    if sr.mode == "replication":
        children.append(replicas_service(sr))
    children.append(statefulset(sr, material, replicas=replicas))
    if sr.pdb_enabled:
        children.append(pod_disruption_budget(sr))
    return children
