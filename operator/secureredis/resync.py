"""Periodic work on every SecureRedis: resyncs, fast ticks and the ACL LOG watch.

kopf's timers would do this, but kopf puts a finalizer on every object that
has a timer, and a finalizer blocks deleting a SecureRedis (and its
namespace) whenever the operator is not running. This loop runs in one
thread instead: on each tick it lists the SecureRedis objects it watches and
runs what is due for each, so kopf handles only create, update and resume
events, which need no finalizer.

Per object:

- a full reconcile every ``resync_seconds``;
- a reconcile every ``fast_seconds`` while a rotation runs, a primary is
  missing or a Redis Cluster is being repaired (``needs_attention``);
- an ACL LOG read every ``acl_log_seconds``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from . import KIND
from .kube import Kube, KubeError
from .reconcile import needs_attention

log = logging.getLogger(__name__)

Work = Callable[[Mapping[str, Any], logging.LoggerAdapter], None]


class ObjectLogger(logging.LoggerAdapter):
    """Prefixes every message with ``[namespace/name]``, as kopf's object loggers do."""

    def process(self, msg, kwargs):
        return f"[{self.extra['key']}] {msg}", kwargs


@dataclass(frozen=True)
class Intervals:
    resync_seconds: float
    fast_seconds: float
    acl_log_seconds: float

    @property
    def tick(self) -> float:
        return max(0.5, min(self.resync_seconds, self.fast_seconds, self.acl_log_seconds))


class Resyncer:
    """A thread that runs the periodic work for every watched SecureRedis."""

    def __init__(self, kube: Callable[[], Kube], namespaces: list[str], intervals: Intervals,
                 reconcile: Work, watch_acl_log: Work):
        self.kube = kube
        self.namespaces = namespaces
        self.intervals = intervals
        self.reconcile = reconcile
        self.watch_acl_log = watch_acl_log
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="secureredis-resync", daemon=True)
        # Object key -> monotonic time of the last reconcile / ACL LOG read.
        self.last_reconcile: dict[str, float] = {}
        self.last_acl_log: dict[str, float] = {}

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)

    def mark_reconciled(self, key: str) -> None:
        """Record that an event handler just reconciled ``key``, delaying its next resync."""
        self.last_reconcile[key] = time.monotonic()

    def _loop(self) -> None:
        while not self.stopping.wait(self.intervals.tick):
            try:
                objects = self._list()
            except KubeError as error:
                log.warning("listing SecureRedis objects failed error=%s", error)
                continue
            for body in objects:
                if self.stopping.is_set():
                    return
                self._run_due(body)

    def _list(self) -> list[dict]:
        if not self.namespaces:
            return self.kube().list_all(KIND)
        objects = []
        for namespace in self.namespaces:
            objects += self.kube().list(KIND, namespace, {})
        return objects

    def _run_due(self, body: dict) -> None:
        metadata = body.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            return
        key = f"{metadata.get('namespace')}/{metadata.get('name')}"
        logger = ObjectLogger(log, {"key": key})
        now = time.monotonic()
        last = self.last_reconcile.setdefault(key, now)
        interval = (self.intervals.fast_seconds if needs_attention(body)
                    else self.intervals.resync_seconds)
        try:
            if now - last >= interval:
                self.last_reconcile[key] = now
                self.reconcile(body, logger)
                logger.debug("resync finished")
            if now - self.last_acl_log.setdefault(key, now) >= self.intervals.acl_log_seconds:
                self.last_acl_log[key] = now
                self.watch_acl_log(body, logger)
        except Exception as error:  # noqa: BLE001 - one object must not stop the others
            logger.exception("periodic work failed error=%s", error)

    def forget(self, key: str) -> None:
        self.last_reconcile.pop(key, None)
        self.last_acl_log.pop(key, None)
