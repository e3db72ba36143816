"""Facts about the operator's own deployment that the builders need."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RenderContext:
    """Where the operator runs, so NetworkPolicies can admit its pods to Redis."""

    operator_namespace: str = "secure-redis-system"
    operator_pod_labels: dict[str, str] = field(
        default_factory=lambda: {"app.kubernetes.io/name": "secure-redis-operator"})
