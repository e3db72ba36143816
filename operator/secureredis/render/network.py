"""NetworkPolicy: who may reach the Redis pods, and where they may connect.

Ingress:
- the client port from the selected clients (by default, pods in the same
  namespace that carry the SecureRedis's client label);
- the client port and the cluster bus port from the deployment's own pods
  (replication and cluster gossip);
- the client port from the operator's pods;
- the exporter port from the listed scrapers, when metrics are on.

Egress: DNS on port 53, and the deployment's own pods on both Redis ports.
Everything else is denied in both directions.
"""

from __future__ import annotations

from .. import names
from ..spec import SecureRedis
from .context import RenderContext
from .meta import metadata


def _ports(*numbers: int, protocol: str = "TCP") -> list[dict]:
    return [{"protocol": protocol, "port": number} for number in numbers]


def client_peers(sr: SecureRedis) -> list[dict]:
    """Return the peers allowed on the client port; the default is the client label."""
    if sr.network_policy.clients:
        return [dict(peer) for peer in sr.network_policy.clients]
    return [{"podSelector": {"matchLabels": {names.client_label(sr.name): "true"}}}]


def operator_peer(sr: SecureRedis, context: RenderContext) -> dict:
    namespace_selector = sr.network_policy.operator_namespace_selector or {
        "matchLabels": {"kubernetes.io/metadata.name": context.operator_namespace}}
    pod_selector = sr.network_policy.operator_pod_selector or {
        "matchLabels": dict(context.operator_pod_labels)}
    return {"namespaceSelector": namespace_selector, "podSelector": pod_selector}


def network_policy(sr: SecureRedis, context: RenderContext) -> dict:
    own_pods = {"podSelector": {"matchLabels": names.selector_labels(sr.name)}}
    ingress = [
        {"from": client_peers(sr), "ports": _ports(names.CLIENT_PORT)},
        {"from": [own_pods], "ports": _ports(names.CLIENT_PORT, names.BUS_PORT)},
        {"from": [operator_peer(sr, context)], "ports": _ports(names.CLIENT_PORT)},
    ]
    if sr.metrics.enabled and sr.metrics.scrapers:
        ingress.append({"from": [dict(p) for p in sr.metrics.scrapers],
                        "ports": _ports(sr.metrics.port)})
    egress = [
        # DNS is allowed to any destination on port 53, because the resolver
        # may be a pod, a node-local cache or a host address.
        {"ports": _ports(53, protocol="UDP") + _ports(53)},
        {"to": [own_pods], "ports": _ports(names.CLIENT_PORT, names.BUS_PORT)},
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(sr, names.network_policy(sr.name), "network-policy"),
        "spec": {
            "podSelector": {"matchLabels": names.selector_labels(sr.name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }
