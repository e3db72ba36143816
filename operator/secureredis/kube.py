"""The only module that talks to the Kubernetes API.

Children are written with server-side apply under one field manager
(``secure-redis-operator``), sending only the fields the operator owns, with
``force`` so that a field another manager took over is taken back: the
operator is the source of truth for its children.

Requests go through the official client's transport (authentication,
kubeconfig and in-cluster configuration), but bodies stay plain dicts: the
generic path avoids one typed method per kind, and skips the client's model
(de)serialization, which costs more than the request for a StatefulSet.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable
from urllib.parse import quote, urlencode

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from . import API_VERSION, FIELD_MANAGER, KIND, PLURAL

logger = logging.getLogger(__name__)

# kind -> (API version, resource plural) of every kind the operator touches.
RESOURCES = {
    "ConfigMap": ("v1", "configmaps"),
    "Secret": ("v1", "secrets"),
    "Service": ("v1", "services"),
    "Pod": ("v1", "pods"),
    "Event": ("v1", "events"),
    "PersistentVolumeClaim": ("v1", "persistentvolumeclaims"),
    "StatefulSet": ("apps/v1", "statefulsets"),
    "NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies"),
    "PodDisruptionBudget": ("policy/v1", "poddisruptionbudgets"),
    KIND: (API_VERSION, PLURAL),
}

REQUEST_TIMEOUT_SECONDS = 30


class KubeError(RuntimeError):
    """A Kubernetes API request failed; ``status`` is the HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Ref:
    """Reference to the namespaced object an Event is about, with its uid."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str | None = None


def resource_path(kind: str, namespace: str | None, name: str | None = None,
                  subresource: str | None = None) -> str:
    api_version, plural = RESOURCES[kind]
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = base
    if namespace:
        path += f"/namespaces/{quote(namespace, safe='')}"
    path += f"/{plural}"
    if name:
        path += f"/{quote(name, safe='')}"
    if subresource:
        path += f"/{subresource}"
    return path


class Kube:
    """Thin Kubernetes client that sends and returns objects as plain dicts."""

    def __init__(self, api_client: k8s_client.ApiClient):
        self.api = api_client
        self.writes = 0
        self._writes_lock = threading.Lock()

    @classmethod
    def from_environment(cls, kubeconfig: str | None = None) -> Kube:
        """Load in-cluster configuration inside a pod, else the kubeconfig file."""
        configuration = k8s_client.Configuration()
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config(config_file=kubeconfig,
                                        client_configuration=configuration)
        # Children are applied by a few threads at once; give each a connection.
        configuration.connection_pool_maxsize = 8
        return cls(k8s_client.ApiClient(configuration))

    def request(self, method: str, path: str, *, query: dict | None = None,
                body: Any = None, content_type: str = "application/json") -> dict | None:
        """Send one request; returns the decoded JSON body, or None on 404."""
        url = path + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        serialized = self.api.param_serialize(
            method=method, resource_path=url, header_params=headers,
            body=body, auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(*serialized, _request_timeout=REQUEST_TIMEOUT_SECONDS)
            response.read()
        except ApiException as error:
            if error.status == 404:
                return None
            raise KubeError(f"{method} {path} failed: {error.status} {_api_message(error)}",
                            error.status) from None
        if method != "GET":
            with self._writes_lock:
                self.writes += 1
        if response.status == 404:
            return None
        if response.status >= 400:
            raise KubeError(f"{method} {path} failed: {response.status} "
                            f"{_body_message(response.data)}", response.status)
        return json.loads(response.data) if response.data else None

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        return self.request("GET", resource_path(kind, namespace, name))

    def list(self, kind: str, namespace: str, label_selector: dict[str, str]) -> list[dict]:
        selector = ",".join(f"{key}={value}" for key, value in sorted(label_selector.items()))
        query = {"labelSelector": selector} if selector else None
        result = self.request("GET", resource_path(kind, namespace), query=query)
        return (result or {}).get("items", [])

    def list_all(self, kind: str) -> list[dict]:
        """List every object of a kind in all namespaces."""
        result = self.request("GET", resource_path(kind, None))
        return (result or {}).get("items", [])

    def apply(self, obj: dict) -> dict:
        """Server-side apply ``obj`` as the operator's field manager."""
        metadata = obj["metadata"]
        path = resource_path(obj["kind"], metadata["namespace"], metadata["name"])
        result = self.request(
            "PATCH", path, query={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=json.dumps(obj), content_type="application/apply-patch+yaml",
        )
        return result or {}

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self.request("DELETE", resource_path(kind, namespace, name))

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """Return a Secret's decoded data, or None if it does not exist."""
        secret = self.get("Secret", namespace, name)
        if secret is None:
            return None
        return {key: base64.b64decode(value).decode("utf-8")
                for key, value in (secret.get("data") or {}).items()}

    def event(self, ref: Ref, event_type: str, reason: str, message: str,
              now: datetime | None = None) -> None:
        """Record a core/v1 Event about ``ref``; failures are logged, never raised.

        Callers must never put a secret in ``message``.
        """
        now = now or datetime.now(timezone.utc)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
            "involvedObject": {"apiVersion": ref.api_version, "kind": ref.kind,
                               "name": ref.name, "namespace": ref.namespace,
                               **({"uid": ref.uid} if ref.uid else {})},
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": socket.gethostname()[:128],
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self.request("POST", resource_path("Event", ref.namespace), body=event)
        except KubeError as error:
            logger.warning("posting an Event failed reason=%s error=%s", reason, error)

    def patch_labels(self, kind: str, namespace: str, name: str, labels: dict[str, str]) -> None:
        """Merge-patch labels onto an object the operator does not own, such as a pod."""
        self.request("PATCH", resource_path(kind, namespace, name),
                     body={"metadata": {"labels": labels}},
                     content_type="application/merge-patch+json")

    def patch_status(self, namespace: str, name: str, status: dict) -> dict | None:
        """Merge-patch the status subresource of a SecureRedis."""
        return self.request("PATCH", resource_path(KIND, namespace, name, "status"),
                            body={"status": status}, content_type="application/merge-patch+json")


def _api_message(error: ApiException) -> str:
    return _body_message(error.body) if error.body else str(error.reason)


def _body_message(data: Any) -> str:
    try:
        return json.loads(data).get("message", "")
    except (TypeError, ValueError, AttributeError):
        return ""


def secret_names(objects: Iterable[dict]) -> list[str]:
    return [o["metadata"]["name"] for o in objects if o.get("kind") == "Secret"]
