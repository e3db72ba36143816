"""Status conditions as a list keyed by ``type``, the way Kubernetes APIs keep them.

``set_condition`` replaces one entry and keeps ``lastTransitionTime`` unless
the status changes, so repeated reconciles with the same outcome write the
same status and cause no extra API writes.

The conditions follow kstatus: ``Reconciling`` is True while the deployment
is moving towards the spec (children being applied, pods not ready yet),
``Stalled`` is True when progress needs a human (an invalid spec), and
``Ready`` is True when every pod serves and the spec is fully applied.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Mapping

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
TLS_READY = "TLSReady"
CREDENTIALS_READY = "CredentialsReady"
CLUSTER_HEALTHY = "ClusterHealthy"
SECURITY_BASELINE = "SecurityBaseline"

ORDER = (READY, RECONCILING, STALLED, TLS_READY, CREDENTIALS_READY, CLUSTER_HEALTHY,
         SECURITY_BASELINE)


def timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def find(conditions: Iterable[Mapping], condition_type: str) -> Mapping | None:
    for condition in conditions or ():
        if condition.get("type") == condition_type:
            return condition
    return None


def set_condition(conditions: list[Mapping] | None, condition_type: str, status: bool | None,
                  reason: str, message: str, *, generation: int | None,
                  now: datetime) -> list[dict]:
    """Return a new list where ``condition_type`` has the given status, reason and message."""
    text = {True: "True", False: "False", None: "Unknown"}[status]
    previous = find(conditions or (), condition_type)
    changed = previous is None or previous.get("status") != text
    entry = {
        "type": condition_type,
        "status": text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": timestamp(now) if changed else previous["lastTransitionTime"],
    }
    if generation is not None:
        entry["observedGeneration"] = generation
    others = [dict(c) for c in conditions or () if c.get("type") != condition_type]
    merged = others + [entry]
    rank = {name: index for index, name in enumerate(ORDER)}
    return sorted(merged, key=lambda c: rank.get(c["type"], len(ORDER)))
