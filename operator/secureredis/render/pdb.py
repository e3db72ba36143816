"""PodDisruptionBudget: voluntary evictions take at most maxUnavailable pods at a time."""

from __future__ import annotations

from .. import names
from ..spec import SecureRedis
from .meta import metadata


def pod_disruption_budget(sr: SecureRedis) -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(sr, names.pdb(sr.name), "server"),
        "spec": {
            "maxUnavailable": sr.pdb_max_unavailable,
            "selector": {"matchLabels": names.selector_labels(sr.name)},
        },
    }
