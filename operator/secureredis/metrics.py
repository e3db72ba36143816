"""Prometheus metrics of the operator, and the HTTP server that exposes them.

Callers record what happened through plain functions (``observe_reconcile``,
``set_certificate_expiry``, ...) that take namespaces, names and numbers, so
the reconcile code needs no Prometheus types. The functions write into one
``Metrics`` object, ``DEFAULT``; tests build their own ``Metrics`` with a
private registry instead.

Names follow the Prometheus conventions: the ``secure_redis_`` prefix,
seconds as the unit and ``_total`` on counters. Labels hold only bounded
values: namespaces, SecureRedis names, ACL user names (at most 32 users per
SecureRedis plus the operator's own) and fixed reason words. The object of
an ACL denial (a key or a command) is never a label, because keys are
unbounded and may be sensitive.

Metrics that carry a SecureRedis name are removed by ``forget`` when the
object is deleted, so a scrape never reports deployments that are gone.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Callable

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector,
                               ProcessCollector, start_http_server)

from . import __version__

PREFIX = "secure_redis"
DEFAULT_PORT = 8081

# Outcomes of one reconcile.
RESULT_SUCCESS = "success"
RESULT_STALLED = "stalled"
RESULT_ERROR = "error"
RECONCILE_RESULTS = (RESULT_SUCCESS, RESULT_STALLED, RESULT_ERROR)

ROTATION_KINDS = ("passwords", "certificates", "ca")
ROTATION_RESULTS = ("started", "completed", "failed")

CERTIFICATES = ("server", "ca")

# From a write-free resync of one object (a few ms) to a slow API server.
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Every metric of the operator, registered in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 clock: Callable[[], float] = time.time, process_metrics: bool = True):
        self.registry = registry or CollectorRegistry()
        self._clock = clock
        self._lock = threading.Lock()
        # Label values in use per SecureRedis, so forget() can remove them.
        self._denial_labels: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._certificates: dict[tuple[str, str], set[str]] = {}

        if process_metrics:
            # Resident memory, CPU time and open files of this process, and
            # the Python version: what an operator's dashboard shows first.
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)

        self.build_info = Gauge(
            f"{PREFIX}_operator_build_info", "Version of the running operator; the value is 1.",
            ["version"], registry=self.registry)
        self.build_info.labels(__version__).set(1)

        self.reconciles = Counter(
            f"{PREFIX}_reconciles_total", "Reconciles of SecureRedis objects, by result.",
            ["result"], registry=self.registry)
        self.reconcile_duration = Histogram(
            f"{PREFIX}_reconcile_duration_seconds",
            "Time one reconcile of a SecureRedis took, by result.",
            ["result"], buckets=RECONCILE_BUCKETS, registry=self.registry)
        self.reconcile_errors = Counter(
            f"{PREFIX}_reconcile_errors_total",
            "Reconciles that raised an error, per SecureRedis.",
            ["namespace", "name"], registry=self.registry)
        self.rotations = Counter(
            f"{PREFIX}_rotations_total",
            "Password, certificate and CA rotations, by kind and result.",
            ["kind", "result"], registry=self.registry)
        self.certificate_expiry = Gauge(
            f"{PREFIX}_certificate_expiry_timestamp_seconds",
            "Expiry time of a SecureRedis certificate, as a Unix timestamp.",
            ["namespace", "name", "certificate"], registry=self.registry)
        self.certificate_remaining = Gauge(
            f"{PREFIX}_certificate_seconds_to_expiry",
            "Seconds until a SecureRedis certificate expires, computed at scrape time; "
            "negative once it has expired.",
            ["namespace", "name", "certificate"], registry=self.registry)
        self.acl_denials = Counter(
            f"{PREFIX}_acl_denials_total",
            "Commands and logins Redis denied, from ACL LOG, by user and reason.",
            ["namespace", "name", "user", "reason"], registry=self.registry)
        self.api_writes = Counter(
            f"{PREFIX}_api_writes_total",
            "Write requests (POST, PATCH, DELETE) the operator sent to the Kubernetes API.",
            registry=self.registry)

    def observe_reconcile(self, namespace: str, name: str, seconds: float, result: str) -> None:
        """Record one reconcile of ``namespace/name`` that took ``seconds``."""
        _check_choice("result", result, RECONCILE_RESULTS)
        self.reconciles.labels(result).inc()
        self.reconcile_duration.labels(result).observe(max(seconds, 0.0))
        if result == RESULT_ERROR:
            self.reconcile_errors.labels(namespace, name).inc()

    def observe_rotation(self, kind: str, result: str) -> None:
        """Record that a rotation of ``kind`` started, completed or failed."""
        _check_choice("kind", kind, ROTATION_KINDS)
        _check_choice("result", result, ROTATION_RESULTS)
        self.rotations.labels(kind, result).inc()

    def set_certificate_expiry(self, namespace: str, name: str, not_after: datetime,
                               certificate: str = "server") -> None:
        """Publish the expiry of one certificate of ``namespace/name``.

        ``not_after`` must be timezone-aware. The seconds-to-expiry gauge is
        computed from the clock at every scrape, so it stays right between
        reconciles.
        """
        _check_choice("certificate", certificate, CERTIFICATES)
        if not_after.tzinfo is None:
            raise ValueError("not_after must be timezone-aware, for example in UTC")
        expiry = not_after.timestamp()
        with self._lock:
            self._certificates.setdefault((namespace, name), set()).add(certificate)
        self.certificate_expiry.labels(namespace, name, certificate).set(expiry)
        self.certificate_remaining.labels(namespace, name, certificate).set_function(
            lambda: expiry - self._clock())

    def count_acl_denials(self, namespace: str, name: str, user: str, reason: str,
                          count: int = 1) -> None:
        """Add ``count`` new ACL LOG denials of ``user`` for ``reason`` (auth, command, key, channel)."""
        if count < 0:
            raise ValueError(f"count must not be negative, not {count}")
        with self._lock:
            self._denial_labels.setdefault((namespace, name), set()).add((user, reason))
        self.acl_denials.labels(namespace, name, user, reason).inc(count)

    def count_api_writes(self, count: int) -> None:
        """Add ``count`` write requests to the Kubernetes API."""
        if count < 0:
            raise ValueError(f"count must not be negative, not {count}")
        self.api_writes.inc(count)

    def forget(self, namespace: str, name: str) -> None:
        """Remove every series of a deleted SecureRedis."""
        key = (namespace, name)
        with self._lock:
            certificates = self._certificates.pop(key, set())
            denials = self._denial_labels.pop(key, set())
        for certificate in certificates:
            self.certificate_expiry.remove(namespace, name, certificate)
            self.certificate_remaining.remove(namespace, name, certificate)
        for user, reason in denials:
            self.acl_denials.remove(namespace, name, user, reason)
        try:
            self.reconcile_errors.remove(namespace, name)
        except KeyError:
            pass


def _check_choice(label: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{label} must be one of {', '.join(choices)}, not {value!r}")


DEFAULT = Metrics()


def observe_reconcile(namespace: str, name: str, seconds: float, result: str) -> None:
    """Record one reconcile; ``result`` is success, stalled or error."""
    DEFAULT.observe_reconcile(namespace, name, seconds, result)


def observe_rotation(kind: str, result: str) -> None:
    """Record a rotation event; ``kind`` is passwords, certificates or ca."""
    DEFAULT.observe_rotation(kind, result)


def set_certificate_expiry(namespace: str, name: str, not_after: datetime,
                           certificate: str = "server") -> None:
    """Publish when a certificate (server or ca) of a SecureRedis expires."""
    DEFAULT.set_certificate_expiry(namespace, name, not_after, certificate)


def count_acl_denials(namespace: str, name: str, user: str, reason: str, count: int = 1) -> None:
    """Add new ACL LOG denials of a user of a SecureRedis."""
    DEFAULT.count_acl_denials(namespace, name, user, reason, count)


def count_api_writes(count: int) -> None:
    """Add write requests the operator sent to the Kubernetes API."""
    DEFAULT.count_api_writes(count)


def forget(namespace: str, name: str) -> None:
    """Remove the series of a deleted SecureRedis."""
    DEFAULT.forget(namespace, name)


def start_server(port: int = DEFAULT_PORT, address: str = "0.0.0.0",
                 metrics: Metrics | None = None):
    """Serve ``/metrics`` in a daemon thread on ``address:port``; returns the HTTP server.

    Port 0 lets the system pick a free port (``server.server_port`` tells
    which); the command line treats 0 as "metrics off" and never calls this.
    """
    server, _thread = start_http_server(port, address, registry=(metrics or DEFAULT).registry)
    return server
