"""kopf registration only: every handler is a thin call into ``reconcile``.

Handlers are registered into a registry passed in by the caller, so the
command line can set the resync interval and tests can run the operator with
a short one. Create, update and resume events, and the periodic resyncs of
``resync.Resyncer``, all run the same idempotent reconcile. A per-object
lock keeps a resync and an event handler from reconciling one object at the
same time.

kopf's own bookkeeping (the last handled spec, handler progress) lives in
annotations under ``secureredis.io/``, and its finalizer would be
``secureredis.io/finalizer``. No handler requires one (kopf timers would,
which is why resyncs run outside kopf), so deleting a SecureRedis is never
blocked, even with the operator stopped, and its children go with it
through owner references.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import kopf

from . import GROUP, PLURAL, VERSION, metrics
from .kube import Kube
from .reconcile import reconcile, watch_acl_log
from .resync import Intervals, Resyncer
from .render import RenderContext

ANNOTATION_PREFIX = "secureredis.io"
FINALIZER = "secureredis.io/finalizer"


@dataclass(frozen=True)
class OperatorConfig:
    resync_seconds: float = 60.0
    namespaces: tuple[str, ...] = ()
    acl_log_seconds: float = 30.0
    rotation_seconds: float = 5.0
    kubeconfig: str | None = None
    context: RenderContext = RenderContext()
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)


def build_settings() -> kopf.OperatorSettings:
    """Return kopf settings that keep kopf's bookkeeping under the operator's own prefix."""
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration")
    # kopf would post an Event for every successful handler run, which is an
    # API write per resync. The operator posts its own Events instead.
    settings.posting.level = logging.WARNING
    return settings


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Register every handler of the operator into ``registry``."""
    locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
    state: dict[str, Any] = {}

    def kube() -> Kube:
        if "kube" not in state:
            state["kube"] = Kube.from_environment(config.kubeconfig)
        return state["kube"]

    def run(body: Mapping[str, Any], logger: logging.Logger | logging.LoggerAdapter) -> None:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        client = kube()
        with locks[f"{namespace}/{name}"]:
            started, writes_before = time.monotonic(), client.writes
            result = metrics.RESULT_ERROR
            try:
                outcome = reconcile(client, dict(body), now=config.clock(),
                                    context=config.context, logger=logger)
                result = metrics.RESULT_STALLED if outcome.stalled else metrics.RESULT_SUCCESS
            finally:
                metrics.observe_reconcile(namespace, name, time.monotonic() - started, result)
                metrics.count_api_writes(client.writes - writes_before)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A registry of our own starts without kopf's default login handlers.
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.create(GROUP, VERSION, PLURAL, id="reconcile", registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, id="reconcile", registry=registry)
    @kopf.on.resume(GROUP, VERSION, PLURAL, id="reconcile", registry=registry)
    def on_change(body: kopf.Body, logger: logging.Logger, **_: Any) -> None:
        run(dict(body), logger)
        resyncer.mark_reconciled(f"{body.metadata.namespace}/{body.metadata.name}")

    # Kinds of ACL denial already reported, with the count last seen, per
    # SecureRedis. Kept in memory, so after a restart each kind still in ACL
    # LOG is reported once more.
    denials_seen: defaultdict[str, dict] = defaultdict(dict)

    def watch(body: Mapping[str, Any], logger: logging.LoggerAdapter) -> None:
        metadata = body["metadata"]
        key = f"{metadata['namespace']}/{metadata['name']}"
        watch_acl_log(kube(), body, denials_seen[key], now=config.clock(), logger=logger)

    resyncer = Resyncer(kube, list(config.namespaces),
                        Intervals(config.resync_seconds, config.rotation_seconds,
                                  config.acl_log_seconds),
                        reconcile=lambda body, logger: run(body, logger), watch_acl_log=watch)

    @kopf.on.startup(registry=registry)
    def start_resync(**_: Any) -> None:
        resyncer.start()

    @kopf.on.cleanup(registry=registry)
    def stop_resync(**_: Any) -> None:
        resyncer.stop()

    @kopf.on.delete(GROUP, VERSION, PLURAL, id="deleted", optional=True, registry=registry)
    def on_delete(body: kopf.Body, logger: logging.Logger, **_: Any) -> None:
        key = f"{body.metadata.namespace}/{body.metadata.name}"
        metrics.forget(body.metadata.namespace, body.metadata.name)
        denials_seen.pop(key, None)
        resyncer.forget(key)
        logger.info("deleted; children follow through owner references")
