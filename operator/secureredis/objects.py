"""Pure comparisons of desired and live objects, to skip writes that change nothing.

The operator sends only the fields it owns. A child needs no write when the
live object already holds every one of those fields with the same value:
``covers(live, desired)``. Fields that the API server or other controllers
add (defaults, status, other managers' labels) do not matter.

``content_hash`` fingerprints a desired object; it is stored on the child in
an annotation, so a later difference with an unchanged hash is drift made by
someone else, which the operator restores and reports with an Event.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

HASH_ANNOTATION = "secureredis.io/applied-hash"


def covers(live: Any, desired: Any) -> bool:
    """Return True if every field in ``desired`` has the same value in ``live``."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return False
        return all(key in live and covers(live[key], value) for key, value in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return False
        return all(covers(item_live, item) for item_live, item in zip(live, desired))
    return live == desired


def content_hash(obj: dict) -> str:
    """Return a short stable digest of an object's JSON form."""
    encoded = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:20]


def with_hash(obj: dict) -> dict:
    """Return a copy of ``obj`` that carries its own content hash as an annotation."""
    digest = content_hash(obj)
    metadata = dict(obj["metadata"])
    metadata["annotations"] = {**metadata.get("annotations", {}), HASH_ANNOTATION: digest}
    return {**obj, "metadata": metadata}


def applied_hash(live: dict | None) -> str | None:
    if not live:
        return None
    return ((live.get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION)
