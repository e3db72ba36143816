"""Drive one SecureRedis towards its spec, in numbered steps.

1. Validate the spec. An invalid spec stalls the object: status and an Event
   name the field and the fix, and nothing is created or deleted.
2. Load the generated material from its operator-only Secrets and add only
   what is missing (a new user's password, say). Nothing is regenerated.
3. Render every child from the spec and the material (pure builders).
4. Apply each child with server-side apply, skipping children whose live
   copy already holds every owned field. A child that differs although the
   operator's last applied content is unchanged was changed by someone
   else: it is restored and an Event says so.
5. When pods run, bring each one in line with the material over mutual TLS
   as the operator user (ACL users, replication, certificate reloads; see
   ``servers``), then let rotations finish the phases the servers allow and
   apply again what that changed, such as a newly published password.
6. Read back the StatefulSet and compute the status: kstatus conditions,
   certificate dates, user Secrets and the hardening checklist.

The clock is a parameter, so tests can move time.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from . import (API_VERSION, KIND, acl, checks, conditions, credentials, material, metrics,
               names, objects, pki, rotation, servers, spec)
from .engines import command_table
from .kube import Kube, KubeError, Ref
from .render import RenderContext, render_all
from .render.secrets import STATE_KEY


@dataclass
class Result:
    """Outcome of one reconcile: the new status and the writes it made."""

    status: dict
    applied: list[str] = field(default_factory=list)
    stalled: bool = False


def ref_of(body: Mapping[str, Any]) -> Ref:
    metadata = body.get("metadata") or {}
    return Ref(API_VERSION, KIND, metadata.get("namespace", "default"), metadata.get("name", ""),
               metadata.get("uid"))


def reconcile(kube: Kube, body: Mapping[str, Any], *, now: datetime, context: RenderContext,
              logger: logging.Logger | logging.LoggerAdapter) -> Result:
    """Run every step once for the SecureRedis ``body`` and write its status."""
    old_status = dict(body.get("status") or {})
    metadata = body.get("metadata") or {}
    generation = metadata.get("generation")
    # status.tls is written only once material exists. A spec that stalled
    # before that still has an observedGeneration but never had children.
    first_run = not old_status.get("tls")
    ref = ref_of(body)

    # 1. Validate.
    try:
        sr = spec.load(body)
        unsupported_issuer(sr)
        external = read_external_passwords(kube, sr)
        external_ca = read_external_ca(kube, sr, now)
    except spec.SpecError as error:
        return stall(kube, ref, old_status, generation, error.errors, now=now, logger=logger)

    # 2. Load the material, fill in what is missing, start due rotations.
    existing = load_material(kube, sr, logger)
    if existing is None and not first_run:
        kube.event(ref, "Warning", "MaterialLost",
                   f"Secrets {names.ca_secret(sr.name)} and {names.system_secret(sr.name)} are "
                   "both gone; generated a new CA and new passwords, so clients need their "
                   "updated Secrets", now)
        logger.warning("material lost, generated anew")
    generated = material.ensure(sr, existing, now=now, external_passwords=external,
                                external_ca=external_ca)
    generated, steps = rotation.plan(sr, generated, annotations=metadata.get("annotations") or {},
                                     now=now, external_ca=external_ca)
    report_steps(kube, ref, steps, now=now, logger=logger)

    # 3. and 4. Render, and apply what differs.
    replicas = (old_status.get("cluster") or {}).get("requiredPods") if sr.mode == "cluster" else None
    applied, live_children = apply_children(kube, ref, sr, generated, context, replicas=replicas,
                                            first_run=first_run, now=now, logger=logger)

    # 5. Bring the running servers in line; finish rotation phases they allow.
    observation = None
    pods = servers.running_pods(kube, sr)
    if pods:
        observation = servers.converge(kube, ref, sr, generated, pods, now=now, logger=logger,
                                       replication_state=old_status.get("replication"))
        advanced, steps = rotation.advance(sr, generated, observation.convergence, now=now)
        if advanced != generated:
            generated = advanced
            report_steps(kube, ref, steps, now=now, logger=logger)
            more, live_children = apply_children(kube, ref, sr, generated, context,
                                                 replicas=replicas, first_run=first_run,
                                                 now=now, logger=logger)
            applied += more

    # 6. Read back and compute the status.
    statefulset = kube.get("StatefulSet", sr.namespace, names.statefulset(sr.name))
    status = compute_status(sr, generated, statefulset, live_children, old_status,
                            observation=observation, generation=generation, now=now)
    write_status(kube, sr.namespace, sr.name, old_status, status)
    metrics.set_certificate_expiry(sr.namespace, sr.name, generated.server.not_after, "server")
    metrics.set_certificate_expiry(sr.namespace, sr.name, generated.ca.not_after, "ca")
    return Result(status=status, applied=applied)


# Children are applied in two waves. Everything the pods need or are guarded
# by (configuration, Secrets, Services and the NetworkPolicy) exists before
# the StatefulSet can start a pod; within a wave requests run in parallel.
SECOND_WAVE = ("StatefulSet", "PodDisruptionBudget")
APPLY_WORKERS = 6


def apply_children(kube: Kube, ref: Ref, sr: spec.SecureRedis, generated: material.Material,
                   context: RenderContext, *, replicas: int | None = None, first_run: bool,
                   now: datetime, logger) -> tuple[list[str], list[dict]]:
    """Render every child and apply those whose live copy lacks an owned field."""
    children = [objects.with_hash(child)
                for child in render_all(sr, generated, context, replicas=replicas)]
    waves = [[c for c in children if c["kind"] not in SECOND_WAVE],
             [c for c in children if c["kind"] in SECOND_WAVE]]

    def sync(child: dict) -> tuple[dict, bool]:
        kind, name = child["kind"], child["metadata"]["name"]
        live = kube.get(kind, sr.namespace, name)
        if live is not None and objects.covers(live, child):
            return live, False
        result = kube.apply(child)
        report_write(kube, ref, child, live, first_run=first_run, now=now, logger=logger)
        return result, True

    applied, live_children = [], []
    with ThreadPoolExecutor(max_workers=APPLY_WORKERS) as pool:
        for wave in waves:
            for child, (live, written) in zip(wave, pool.map(sync, wave)):
                live_children.append(live)
                if written:
                    applied.append(f"{child['kind']}/{child['metadata']['name']}")
    return applied, live_children


def report_steps(kube: Kube, ref: Ref, steps: list[rotation.Step], *, now: datetime,
                 logger) -> None:
    for step in steps:
        logger.info("rotation step kind=%s phase=%s", step.kind, step.phase)
        if step.phase in ("Adding", "Reloading", "TrustBoth"):
            metrics.observe_rotation(step.kind, "started")
        elif step.phase == rotation.IDLE:
            metrics.observe_rotation(step.kind, "completed")
        kube.event(ref, "Normal", f"Rotation{step.phase}", f"{step.kind}: {step.message}", now)


def watch_acl_log(kube: Kube, body: Mapping[str, Any], seen: dict, *, now: datetime,
                  logger) -> int:
    """Report new kinds of ACL denial on the pods of ``body``; see servers.watch_acl_log."""
    try:
        sr = spec.load(body)
    except spec.SpecError:
        return 0
    generated = load_material(kube, sr, logger)
    if generated is None:
        return 0
    return servers.watch_acl_log(kube, ref_of(body), sr, generated, seen, now=now,
                                 logger=logger)


def rotation_in_progress(body: Mapping[str, Any]) -> bool:
    """Return True if the status shows a rotation that is not Idle."""
    entries = (body.get("status") or {}).get("rotations") or []
    return any(entry.get("phase") not in (None, rotation.IDLE) for entry in entries)


def needs_attention(body: Mapping[str, Any]) -> bool:
    """Return True when the next reconcile should come in seconds, not at the next resync.

    That is while a rotation runs, while a replication primary is missing,
    and while a Redis Cluster is unhealthy and its repair is not blocked on
    a person. A cluster repair waits for gossip after each step, so a full
    resync interval between steps would leave a degraded cluster for minutes.
    """
    status = body.get("status") or {}
    replication = status.get("replication") or {}
    if rotation_in_progress(body) or replication.get("primaryLostSince"):
        return True
    healthy = conditions.find(status.get("conditions") or [], conditions.CLUSTER_HEALTHY)
    last_step = (status.get("cluster") or {}).get("lastStep") or ""
    return (healthy is not None and healthy.get("status") != "True"
            and not last_step.startswith("blocked:"))


def unsupported_issuer(sr: spec.SecureRedis) -> None:
    """Raise SpecError for TLS issuers the API accepts but this operator cannot serve yet."""
    # TODO: issue certificates through cert-manager (issuer certManager) with
    # the same reload and CA-rotation steps. Until then such specs stall, so
    # they never silently get the operator's own CA.
    if sr.tls.issuer == "certManager":
        raise spec.SpecError([spec.FieldError(
            "spec.tls.issuer", "certManager is not supported by this version of the operator "
            "yet; use secret with a CA Secret (cert-manager can write one), or remove "
            "spec.tls.issuer to use the operator's own CA")])


def read_external_ca(kube: Kube, sr: spec.SecureRedis, now: datetime) -> pki.CertKey | None:
    """Return the CA from spec.tls.secretName for issuer ``secret``, else None.

    Raises SpecError naming spec.tls.secretName when the Secret is missing or
    does not contain a usable CA, so the object stalls until the user fixes it.
    """
    if sr.tls.issuer != "secret":
        return None
    path = "spec.tls.secretName"
    data = kube.read_secret(sr.namespace, sr.tls.secret_name)
    if data is None:
        raise spec.SpecError([spec.FieldError(
            path, f"Secret {sr.tls.secret_name} does not exist in namespace {sr.namespace}; "
            "create it with the CA as tls.crt and its key as tls.key")])
    missing = [key for key in ("tls.crt", "tls.key") if not data.get(key)]
    if missing:
        raise spec.SpecError([spec.FieldError(
            path, f"Secret {sr.tls.secret_name} has no {' and no '.join(missing)}; add the CA "
            "certificate as tls.crt and its private key as tls.key")])
    try:
        return pki.load_ca(data["tls.crt"], data["tls.key"], data.get("ca.crt", ""), now=now)
    except ValueError as error:
        raise spec.SpecError([spec.FieldError(
            path, f"Secret {sr.tls.secret_name}: {error}")]) from None


def read_external_passwords(kube: Kube, sr: spec.SecureRedis) -> dict[str, str]:
    """Read the passwords of users with a passwordSecretRef; raises SpecError if unusable."""
    passwords = {}
    errors = []
    for index, user in enumerate(sr.users):
        ref = user.password_secret_ref
        if ref is None:
            continue
        path = f"spec.acl.users[{index}].passwordSecretRef"
        data = kube.read_secret(sr.namespace, ref.name)
        if data is None:
            errors.append(spec.FieldError(path, f"Secret {ref.name} does not exist in namespace "
                                                f"{sr.namespace}; create it with the key {ref.key}"))
            continue
        if ref.key not in data:
            errors.append(spec.FieldError(path, f"Secret {ref.name} has no key {ref.key}; add it "
                                                "or set passwordSecretRef.key"))
            continue
        password = data[ref.key].strip("\n")
        problem = credentials.check_password(password)
        if problem:
            errors.append(spec.FieldError(path, f"the password in Secret {ref.name} key "
                                                f"{ref.key} {problem}"))
            continue
        passwords[user.name] = password
    if errors:
        raise spec.SpecError(errors)
    return passwords


def load_material(kube: Kube, sr: spec.SecureRedis, logger) -> material.Material | None:
    """Return the stored material from the CA Secret, else from the system Secret's copy."""
    for secret_name in (names.ca_secret(sr.name), names.system_secret(sr.name)):
        data = kube.read_secret(sr.namespace, secret_name)
        if not data or STATE_KEY not in data:
            continue
        try:
            return material.from_json(data[STATE_KEY])
        except ValueError as error:
            logger.warning("stored material unreadable secret=%s error=%s", secret_name, error)
    return None


def report_write(kube: Kube, ref: Ref, child: dict, live: dict | None, *, first_run: bool,
                 now: datetime, logger) -> None:
    """Log every write, and raise an Event when it undid a change made outside the operator."""
    kind, name = child["kind"], child["metadata"]["name"]
    if live is None:
        logger.info("created child kind=%s name=%s", kind, name)
        if not first_run:
            kube.event(ref, "Warning", "ChildRecreated",
                       f"{kind} {name} was missing and has been re-created", now)
    elif objects.applied_hash(live) == objects.applied_hash(child):
        logger.info("restored drifted child kind=%s name=%s", kind, name)
        kube.event(ref, "Warning", "ChildRestored",
                   f"{kind} {name} was changed outside the operator and has been restored", now)
    else:
        logger.info("updated child kind=%s name=%s", kind, name)


def stall(kube: Kube, ref: Ref, old_status: dict, generation: int | None,
          errors: list[spec.FieldError], *, now: datetime, logger) -> Result:
    """Mark the object Stalled with every field error; creates and deletes nothing."""
    message = "; ".join(str(e) for e in errors)
    reason = "InvalidSpec"
    previous = conditions.find(old_status.get("conditions") or (), conditions.STALLED)
    if not previous or previous.get("message") != message or previous.get("status") != "True":
        kube.event(ref, "Warning", reason, message, now)
        logger.warning("invalid spec errors=%s", message)

    conds = old_status.get("conditions") or []
    conds = conditions.set_condition(conds, conditions.STALLED, True, reason, message,
                                     generation=generation, now=now)
    conds = conditions.set_condition(conds, conditions.RECONCILING, False, reason,
                                     "waiting for a corrected spec", generation=generation, now=now)
    conds = conditions.set_condition(conds, conditions.READY, False, reason, message,
                                     generation=generation, now=now)
    status = {**old_status, "observedGeneration": generation, "conditions": conds}
    write_status(kube, ref.namespace, ref.name, old_status, status)
    return Result(status=status, stalled=True)


def user_status(sr: spec.SecureRedis, generated: material.Material, user: str) -> dict:
    """Return the status.users entry of one user: its Secret and last password change."""
    entry = {"name": user, "secretName": names.user_secret(sr.name, user)}
    credential = generated.users.get(user)
    if credential is not None and credential.published_at:
        entry["lastRotation"] = credential.published_at
    return entry


def compute_status(sr: spec.SecureRedis, generated: material.Material, statefulset: dict | None,
                   children: list[dict], old_status: dict, *,
                   observation: servers.Observation | None = None,
                   redis_facts: checks.RedisFacts | None = None, generation: int | None,
                   now: datetime) -> dict:
    """Return the full status for the current state of the children.

    The checklist uses ``observation.facts`` when given, else ``redis_facts``.
    """
    if observation is not None:
        redis_facts = observation.facts
    conds = old_status.get("conditions") or []

    def put(condition_type: str, value: bool | None, reason: str, message: str) -> None:
        nonlocal conds
        conds = conditions.set_condition(conds, condition_type, value, reason, message,
                                         generation=generation, now=now)

    sts_status = (statefulset or {}).get("status") or {}
    want = sr.pod_count
    ready_pods = sts_status.get("readyReplicas", 0) or 0
    updated = sts_status.get("updatedReplicas", 0) or 0
    sts_current = sts_status.get("observedGeneration") == (statefulset or {}).get(
        "metadata", {}).get("generation")
    pods_ready = bool(statefulset) and sts_current and ready_pods >= want and updated >= want

    put(conditions.STALLED, False, "SpecValid", "the spec is valid")
    if pods_ready:
        put(conditions.RECONCILING, False, "Reconciled", f"{ready_pods}/{want} pods ready")
    else:
        put(conditions.RECONCILING, True, "PodsNotReady", f"{ready_pods}/{want} pods ready")

    server_cert = generated.server
    not_after = server_cert.not_after
    renewal = not_after - sr.tls.renew_before
    if now >= not_after:
        put(conditions.TLS_READY, False, "CertificateExpired",
            f"the server certificate expired at {conditions.timestamp(not_after)}")
    elif now >= renewal and rotation.capped_by_ca(generated) and sr.tls.issuer == "secret":
        put(conditions.TLS_READY, True, "CAExpiring",
            f"the server certificate expires at {conditions.timestamp(not_after)} together with "
            f"the CA that signs it; put a new CA in Secret {sr.tls.secret_name} "
            "(spec.tls.secretName)")
    elif now >= renewal:
        put(conditions.TLS_READY, True, "RenewalDue",
            f"the server certificate expires at {conditions.timestamp(not_after)} and is due "
            "for renewal")
    else:
        put(conditions.TLS_READY, True, "CertificateValid",
            f"the server certificate is valid until {conditions.timestamp(not_after)}")

    user_secrets = [names.user_secret(sr.name, u.name) for u in sr.users]
    put(conditions.CREDENTIALS_READY, True, "SecretsPublished",
        f"{len(user_secrets)} user Secrets published" if user_secrets else "no application users")

    kube_facts = checks.kube_facts(
        statefulset=statefulset,
        network_policy=next((c for c in children if c.get("kind") == "NetworkPolicy"), None),
        services=[c for c in children if c.get("kind") == "Service"],
    )
    known = checks.Known(
        admin_users=frozenset(u.name for u in sr.users if u.admin),
        system_users=checks.system_user_rules(
            acl.system_users(sr.engine.replication_commands, command_table(sr.version))),
        passwords={c.username: c.passwords
                   for c in [*generated.users.values(), *generated.system.values()]},
        renames=dict(generated.renames),
    )
    results = checks.run_checks(redis_facts, kube_facts, known)
    passed, total, failed = checks.summary(results)
    unknown = [r.id for r in results if r.outcome == checks.UNKNOWN]
    if failed:
        put(conditions.SECURITY_BASELINE, False, "ChecksFailed", "failed: " + ", ".join(failed))
    elif unknown:
        put(conditions.SECURITY_BASELINE, None, "ChecksIncomplete",
            f"{passed}/{total} checks passed; not yet determined: {', '.join(unknown)}")
    else:
        put(conditions.SECURITY_BASELINE, True, "ChecksPassed", f"{passed}/{total} checks passed")

    cluster_status = old_status.get("cluster")
    cluster_ok = True
    if sr.mode == "cluster":
        if observation and observation.cluster:
            health = observation.cluster.health
            cluster_status = {"requiredPods": observation.cluster.required_pods}
            if observation.cluster.last_step:
                cluster_status["lastStep"] = observation.cluster.last_step[:512]
            if observation.cluster.waiting_for:
                cluster_status["waitingFor"] = observation.cluster.waiting_for[:512]
            put(conditions.CLUSTER_HEALTHY, health.healthy, health.reason, health.message)
            cluster_ok = health.healthy
        else:
            put(conditions.CLUSTER_HEALTHY, None, "NoPodsRunning",
                "no pod runs yet, so the cluster cannot be assessed")
            cluster_ok = False
        if pods_ready and not cluster_ok:
            cluster_condition = conditions.find(conds, conditions.CLUSTER_HEALTHY)
            put(conditions.RECONCILING, True, "ClusterConverging", cluster_condition["message"])

    if not pods_ready:
        put(conditions.READY, False, "PodsNotReady", f"{ready_pods}/{want} pods ready")
    elif not cluster_ok:
        cluster_condition = conditions.find(conds, conditions.CLUSTER_HEALTHY)
        put(conditions.READY, False, "ClusterNotHealthy", cluster_condition["message"])
    elif failed:
        put(conditions.READY, False, "ChecksFailed", "failed: " + ", ".join(failed))
    elif unknown:
        put(conditions.READY, False, "ChecksIncomplete",
            "pods are ready but these checks are not determined yet: " + ", ".join(unknown))
    else:
        put(conditions.READY, True, "Ready", f"{ready_pods}/{want} pods ready and "
            f"{passed}/{total} checks passed")

    cluster_domain = sr.cluster_domain
    endpoints = {
        "client": f"{names.client_service(sr.name)}.{sr.namespace}.svc.{cluster_domain}:"
                  f"{names.CLIENT_PORT}",
        "headless": f"{names.headless_service(sr.name)}.{sr.namespace}.svc.{cluster_domain}",
    }
    if sr.mode == "replication":
        endpoints["replicas"] = (f"{names.replicas_service(sr.name)}.{sr.namespace}.svc."
                                 f"{cluster_domain}:{names.CLIENT_PORT}")

    return {
        **old_status,
        "observedGeneration": generation,
        "conditions": conds,
        "endpoints": endpoints,
        "users": [user_status(sr, generated, u.name) for u in sr.users],
        "tls": {
            "serial": server_cert.serial,
            "notAfter": conditions.timestamp(not_after),
            "renewalTime": conditions.timestamp(renewal),
            "caNotAfter": conditions.timestamp(generated.ca.not_after),
        },
        "checks": {"passed": passed, "total": total, "summary": f"{passed}/{total}",
                   "failed": failed},
        "rotations": rotation.status_entries(generated),
        **({"cluster": cluster_status} if cluster_status else {}),
        **({"replication": observation.replication}
           if observation and observation.replication is not None and sr.mode == "replication"
           else {}),
    }


def write_status(kube: Kube, namespace: str, name: str, old_status: dict, status: dict) -> None:
    """Patch the status subresource unless it would not change."""
    if status == old_status:
        return
    try:
        kube.patch_status(namespace, name, status)
    except KubeError as error:
        # A status write that fails is retried on the next reconcile.
        if error.status != 404:
            raise

