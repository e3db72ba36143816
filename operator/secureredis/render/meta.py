"""Metadata shared by every child: name, labels and the owner reference."""

from __future__ import annotations

import base64

from .. import API_VERSION, KIND, names
from ..spec import SecureRedis


def metadata(sr: SecureRedis, name: str, component: str) -> dict:
    meta = {
        "name": name,
        "namespace": sr.namespace,
        "labels": names.common_labels(sr.name, component),
    }
    if sr.uid:
        meta["ownerReferences"] = [{
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": sr.name,
            "uid": sr.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }]
    return meta


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")
