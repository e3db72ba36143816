"""Work on the running Redis servers: bring every pod in line with the material.

On each reconcile, for every running pod, over mutual TLS as the operator
user (``redisadmin`` does the talking):

1. ACL: apply every users.acl line with one atomic ACL SETUSER per user and
   check it with ACL GETUSER, so passwords added or removed by a rotation,
   and rules changed in the spec, reach running servers without ACL LOAD
   (which on Redis 7.0/7.2 disconnects every client). Live users that are in
   no line are switched off.
2. Replication: in replication mode, make the chosen primary lead, point the
   others at it, label roles for the Services; set ``masterauth`` to the
   replication user's published password.
3. TLS: if the pod presents another certificate than the material's, reload
   the mounted files with CONFIG SET; during a CA rotation also check that
   the pod trusts the next CA, or no longer trusts the previous one.

The result says what holds on every pod, which is what rotations wait for,
and carries the checklist facts read from one live server.
"""

from __future__ import annotations

from dataclasses import dataclass
import time
from datetime import datetime
from typing import Any, Mapping
from . import (checks, material, metrics, names, pki, redisadmin, redisconf, rotation, spec,
               topology)
from .kube import Kube, Ref
from .render.services import ROLE_LABEL

PATHS = redisconf.POD_PATHS


@dataclass(frozen=True)
class Endpoint:
    """One Redis server to talk to: where to connect and which name its certificate has.

    ``pod`` is the Kubernetes Pod when there is one; tests that run plain
    redis-server processes on loopback leave it None.
    """

    name: str
    host: str
    port: int
    server_hostname: str
    ready: bool = True
    pod: dict | None = None
    role_label: str | None = None


@dataclass(frozen=True)
class ClusterObservation:
    """The Redis Cluster as seen after this reconcile's steps."""

    health: topology.Health
    required_pods: int
    last_step: str | None = None
    # Reason of the Wait step that paused the repair in this reconcile, if any.
    waiting_for: str | None = None


@dataclass(frozen=True)
class Observation:
    convergence: rotation.Convergence
    facts: checks.RedisFacts | None
    reachable: int
    cluster: ClusterObservation | None = None
    # status.replication: the primary's pod name and, while no primary
    # serves, since when (replication mode only).
    replication: Mapping[str, Any] | None = None


def ordinal(pod_name: str) -> int:
    suffix = pod_name.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0


def running_pods(kube: Kube, sr: spec.SecureRedis) -> list[Endpoint]:
    """Return the Redis pods that have an IP and are not being deleted, by ordinal."""
    pods = kube.list("Pod", sr.namespace, names.selector_labels(sr.name))
    usable = [p for p in pods
              if (p.get("status") or {}).get("podIP")
              and not p["metadata"].get("deletionTimestamp")
              and (p.get("status") or {}).get("phase") == "Running"]
    usable.sort(key=lambda p: ordinal(p["metadata"]["name"]))
    return [Endpoint(
        name=p["metadata"]["name"],
        host=p["status"]["podIP"],
        port=names.CLIENT_PORT,
        server_hostname=names.pod_dns_name(sr.name, sr.namespace, ordinal(p["metadata"]["name"]),
                                           sr.cluster_domain),
        ready=pod_is_ready(p),
        pod=p,
        role_label=(p["metadata"].get("labels") or {}).get(ROLE_LABEL),
    ) for p in usable]


def pod_is_ready(pod: dict) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def connect_endpoint(generated: material.Material, endpoint: Endpoint):
    """Open a verified mutual-TLS connection to one server as the operator user.

    The connection goes to the pod IP and the certificate is checked against
    the pod's headless DNS name, which works inside and outside the cluster.
    """
    operator = generated.system["operator"]
    return redisadmin.connect(
        endpoint.host, endpoint.port,
        ca_pem=generated.trusted_cas,
        cert_pem=operator.client_cert.cert_pem, key_pem=operator.client_cert.key_pem,
        username=operator.username, password=operator.password,
        server_hostname=endpoint.server_hostname,
    )


def connect_or_log(generated: material.Material, pod: Endpoint, logger, purpose: str):
    """Open an operator connection to ``pod``, or log why not and return None.

    A pod that cannot be reached is normal while it starts or stops, so this
    logs at info level and the caller skips the pod until the next pass.
    """
    try:
        return connect_endpoint(generated, pod)
    except redisadmin.RedisAdminError as error:
        logger.info("pod not reachable pod=%s purpose=%s error=%s", pod.name, purpose, error)
        return None


def converge(kube: Kube | None, ref: Ref | None, sr: spec.SecureRedis,
             generated: material.Material, pods: list[Endpoint], *, now: datetime, logger,
             paths: redisconf.Paths = PATHS,
             replication_state: Mapping[str, Any] | None = None) -> Observation:
    """Bring every server in line with ``generated`` and report which conditions are now true on every server.

    ``paths`` are where the servers read their TLS files (the pod mounts by
    default). ``kube`` may be None for servers that are not pods; replication
    is then left as it is.
    """
    acl_lines = redisconf.users_acl(sr, generated).splitlines()
    known_users = {line.split(" ")[1] for line in acl_lines}
    config_command = generated.renames.get("config") or "CONFIG"
    primary = None
    ca_state = rotation.state(generated, rotation.CA)

    facts = None
    reached = 0
    acl_ok = serving_ok = trusts_next_ok = rejects_previous_ok = True
    clients: dict[int, Any] = {}
    for pod in pods:
        pod_name = pod.name
        client = connect_or_log(generated, pod, logger, "converge")
        if client is None:
            continue
        clients[ordinal(pod_name)] = client
        try:
            acl_ok &= sync_acl(client, acl_lines, known_users, pod_name, logger)
            if sr.mode in ("replication", "cluster"):
                redisadmin.config_set(client, config_command, {
                    "masterauth": generated.system["replication"].password})
            serving_ok &= reload_until_current(client, config_command, generated, pod, paths,
                                               logger)
            if ca_state["phase"] == "TrustBoth" and generated.next_ca:
                trusts_next_ok &= client_ca_check(client, config_command, sr, generated, pod,
                                                  generated.next_ca, paths, want_accepted=True,
                                                  now=now)
            previous = rotation.previous_ca_to_drop(generated)
            if ca_state["phase"] == "Dropping" and previous:
                rejects_previous_ok &= client_ca_check(client, config_command, sr, generated,
                                                       pod, previous, paths,
                                                       want_accepted=False, now=now)
            reached += 1
        except redisadmin.RedisAdminError as error:
            logger.warning("redis command failed pod=%s error=%s", pod_name, error)
            acl_ok = False

    cluster = None
    replication = dict(replication_state or {})
    try:
        if sr.mode == "replication" and kube is not None:
            replication, primary = drive_replication(kube, ref, sr, pods, clients, replication,
                                                     now=now, logger=logger)
        facts = read_facts(generated, pods, clients, primary, logger)
        if sr.mode == "cluster":
            cluster = drive_cluster(kube, ref, sr, generated, pods, clients, now=now,
                                    logger=logger)
    finally:
        for client in clients.values():
            client.close()

    all_pods = reached == sr.pod_count and len(pods) == sr.pod_count
    return Observation(
        convergence=rotation.Convergence(
            all_pods=all_pods,
            acl_synced=acl_ok,
            serving_current_certificate=serving_ok,
            trusts_next_ca=trusts_next_ok,
            rejects_previous_ca=rejects_previous_ok,
        ),
        facts=facts,
        reachable=reached,
        cluster=cluster,
        replication=replication,
    )


def read_facts(generated: material.Material, pods: list[Endpoint], clients: dict[int, Any],
               primary: Endpoint | None, logger) -> checks.RedisFacts | None:
    """Read the checklist facts from the primary, else from the first reachable pod."""
    order = ([primary] if primary else []) + [p for p in pods if p is not primary]
    for pod in order:
        client = clients.get(ordinal(pod.name))
        if client is None:
            continue
        try:
            return redisadmin.gather_facts(client, generated.renames)
        except redisadmin.RedisAdminError as error:
            logger.warning("reading checklist facts failed pod=%s error=%s", pod.name, error)
    return None


# A fresh 3x1 bootstrap takes about 15 steps and a shard added or removed
# about 8; one reconcile runs steps until the cluster matches, a step asks
# to wait, or this budget is spent, and the next reconcile resumes.
CLUSTER_STEP_BUDGET = 40
CLUSTER_TIME_BUDGET_SECONDS = 60.0


def drive_cluster(kube: Kube | None, ref: Ref | None, sr: spec.SecureRedis,
                  generated: material.Material, pods: list[Endpoint], clients: dict[int, Any],
                  *, now: datetime, logger) -> ClusterObservation:
    """Run Redis Cluster steps (bootstrap, replicas, resharding, repair) and assess health.

    Every step is planned by ``topology.next_step`` from what the pods report
    right now, so a half-done bootstrap or slot move resumes where it stopped.
    """
    shards, per_shard = sr.cluster.shards, sr.cluster.replicas_per_shard
    endpoints = {ordinal(p.name): p for p in pods}
    operator = generated.system["operator"]

    def observe() -> dict[int, topology.PodView]:
        return {number: redisadmin.observe_pod(clients.get(number), number, endpoint.host,
                                               endpoint.port, names.BUS_PORT)
                for number, endpoint in endpoints.items()}

    views = observe()
    last = waiting = None
    started = time.monotonic()
    for _ in range(CLUSTER_STEP_BUDGET):
        step = topology.next_step(shards, per_shard, views)
        if isinstance(step, topology.Wait):
            waiting = step.reason
            break
        if step is None:
            break
        if isinstance(step, topology.Blocked):
            logger.warning("cluster step blocked reason=%s", step)
            if kube is not None:
                kube.event(ref, "Warning", "ClusterBlocked", str(step), now)
            last = str(step)
            break
        logger.info("cluster step step=%s", step)
        try:
            redisadmin.apply_step(step, clients, username=operator.username,
                                  password=operator.password)
        except redisadmin.RedisAdminError as error:
            logger.warning("cluster step failed step=%s error=%s", step, error)
            last = f"{step}: {error}"
            break
        last = str(step)
        views = observe()
        if time.monotonic() - started > CLUSTER_TIME_BUDGET_SECONDS:
            break

    required = topology.required_pod_count(shards, per_shard, views)
    health = topology.Health(False, "NoReachablePod", "no pod answered")
    for number in sorted(clients):
        try:
            health = topology.assess_health(redisadmin.cluster_info(clients[number]),
                                            redisadmin.cluster_nodes(clients[number]),
                                            shards, per_shard)
            break
        except redisadmin.RedisAdminError as error:
            logger.info("cluster health read failed pod=%d error=%s", number, error)
    return ClusterObservation(health=health, required_pods=required, last_step=last,
                              waiting_for=waiting)


def sync_acl(client, lines: list[str], known_users: set[str], pod_name: str, logger) -> bool:
    """Apply every users.acl line and switch off unknown users; True if all check out."""
    synced = True
    for line in lines:
        if not redisadmin.sync_acl_user(client, line):
            logger.warning("ACL user differs after SETUSER pod=%s user=%s", pod_name,
                           line.split(" ")[1])
            synced = False
    for user in redisadmin.disable_unknown_users(client, known_users):
        logger.warning("switched off a user unknown to the spec pod=%s user=%s", pod_name, user)
    return synced


def reload_until_current(client, config_command: str, generated: material.Material,
                         pod: Endpoint, paths: redisconf.Paths, logger) -> bool:
    """Return True if the pod presents the material's certificate, reloading it if needed.

    The kubelet refreshes a Secret volume some time after the Secret changes,
    so a reload may still read the old files; the next reconcile tries again.
    """
    operator_cert = generated.system["operator"].client_cert

    def serial() -> str | None:
        served, _ = redisadmin.tls_handshake(pod.host, pod.port,
                                             server_hostname=pod.server_hostname,
                                             ca_pem=generated.trusted_cas,
                                             cert_pem=operator_cert.cert_pem,
                                             key_pem=operator_cert.key_pem)
        return served

    if serial() == generated.server.serial:
        return True
    redisadmin.reload_tls(client, config_command, cert_file=paths.cert_file,
                          key_file=paths.key_file, ca_file=paths.ca_file)
    current = serial() == generated.server.serial
    logger.info("reloaded TLS files pod=%s serving_current=%s", pod.name, current)
    return current


def client_ca_check(client, config_command: str, sr: spec.SecureRedis,
                    generated: material.Material, pod: Endpoint, signer: pki.CertKey,
                    paths: redisconf.Paths, *, want_accepted: bool, now: datetime) -> bool:
    """Return True if the pod accepts (or rejects) a client certificate from ``signer``.

    A throwaway client-only certificate is issued for the check. When the
    answer is not the wanted one, the TLS files are reloaded and it is asked
    again.
    """
    probe = material.client_certificate(sr, signer, "secureredis-ca-check", now)

    def accepted() -> bool:
        _, ok = redisadmin.tls_handshake(pod.host, pod.port, server_hostname=pod.server_hostname,
                                         ca_pem=generated.trusted_cas,
                                         cert_pem=probe.cert_pem, key_pem=probe.key_pem)
        return ok

    if accepted() == want_accepted:
        return True
    redisadmin.reload_tls(client, config_command, cert_file=paths.cert_file,
                          key_file=paths.key_file, ca_file=paths.ca_file)
    return accepted() == want_accepted


def drive_replication(kube: Kube, ref: Ref, sr: spec.SecureRedis, pods: list[Endpoint],
                      clients: dict[int, Any], state: dict[str, Any], *, now: datetime,
                      logger) -> tuple[dict[str, Any], Endpoint | None]:
    """Keep one primary with every other pod replicating it; fail over when it is gone.

    Every pod starts as a replica of the client Service, which selects only
    the pod labelled primary. A primary that restarts therefore comes back
    as an empty replica instead of wiping its replicas with an empty data
    set. When no labelled, reachable primary serves for
    ``spec.replication.failoverAfter``, the reachable pod with the highest
    replication offset is promoted. Returns the new status.replication and
    the primary, if any.
    """
    views = {}
    for pod in pods:
        client = clients.get(ordinal(pod.name))
        if client is None:
            continue
        try:
            role, following = redisadmin.role(client)
            info = redisadmin.replication_info(client)
        except redisadmin.RedisAdminError as error:
            logger.info("replication state unreadable pod=%s error=%s", pod.name, error)
            continue
        views[pod.name] = (pod, client, role, following, int(info.get("master_repl_offset", 0)))

    labelled = [v for v in views.values() if v[0].role_label == "primary" and v[2] == "primary"]
    primary = max(labelled, key=lambda v: v[4])[0] if labelled else None

    if primary is None and views:
        ever_had_primary = bool(state.get("primary"))
        if not ever_had_primary:
            # A new deployment: every pod is empty, so the lowest ordinal leads.
            primary = min((v[0] for v in views.values()), key=lambda p: ordinal(p.name))
        else:
            lost_since = state.get("primaryLostSince") or conditions_timestamp(now)
            state = {**state, "primaryLostSince": lost_since}
            waited = now - rotation.parse_timestamp(lost_since)
            if waited < sr.failover_after:
                logger.warning("primary unavailable pod=%s waited_seconds=%d", state["primary"],
                               waited.total_seconds())
                return state, None
            best = max(views.values(), key=lambda v: (v[4], -ordinal(v[0].name)))
            primary = best[0]
            message = (f"primary {state['primary']} was unavailable for "
                       f"{int(waited.total_seconds())} s; promoted {primary.name}, the most "
                       f"up-to-date pod (replication offset {best[4]})")
            kube.event(ref, "Warning", "PrimaryPromoted", message, now)
            logger.warning("promoted a new primary pod=%s offset=%d", primary.name, best[4])

    if primary is None:
        return state, None

    # Replicas first, so that two pods never both carry the primary label.
    ordered = sorted(views.values(), key=lambda v: v[0] is primary)
    for pod, client, role, following, _ in ordered:
        try:
            wire_replication(kube, ref, sr, pod, primary, client, role, following, now=now,
                             logger=logger)
        except redisadmin.RedisAdminError as error:
            logger.warning("wiring replication failed pod=%s error=%s", pod.name, error)
    return {"primary": primary.name}, primary


def conditions_timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def wire_replication(kube: Kube, ref: Ref, sr: spec.SecureRedis, pod: Endpoint,
                     primary: Endpoint, client, current_role: str, following: str | None, *,
                     now: datetime, logger) -> None:
    """Make ``pod`` follow ``primary`` (or lead, if it is the primary) and label its role."""
    pod_name = pod.name
    primary_host = primary.server_hostname

    if pod is primary:
        wanted_label = "primary"
        if current_role != "primary":
            redisadmin.promote(client)
            logger.info("promoted pod=%s", pod_name)
    else:
        wanted_label = "replica"
        if current_role != "replica" or following != primary_host:
            redisadmin.replicate(client, primary_host, names.CLIENT_PORT)
            logger.info("pointed replica pod=%s primary=%s", pod_name, primary_host)

    if pod.role_label != wanted_label:
        kube.patch_labels("Pod", sr.namespace, pod_name, {ROLE_LABEL: wanted_label})
        if wanted_label == "primary":
            kube.event(ref, "Normal", "PrimaryLabelled",
                       f"pod {pod_name} is the primary and receives client traffic", now)


def watch_acl_log(kube: Kube, ref: Ref, sr: spec.SecureRedis, generated: material.Material,
                  seen: dict[tuple[str, str, str, str], int], *, now: datetime, logger) -> int:
    """Read ACL LOG on every ready pod and raise one Warning Event per new kind of denial.

    A kind is (user, reason, object). ``seen`` maps each kind and pod already
    reported to the count Redis showed last time, and is updated in place, so
    the denial metric grows by the new denials only. Returns the number of
    new kinds. Entries carry no secret: Redis logs the user name, the
    reason and the denied command, key or channel, never a password.
    """
    new_kinds = 0
    for pod in running_pods(kube, sr):
        if not pod.ready:
            continue
        pod_name = pod.name
        client = connect_or_log(generated, pod, logger, "acl-log")
        if client is None:
            continue
        try:
            entries = redisadmin.acl_log(client)
        except redisadmin.RedisAdminError as error:
            logger.warning("reading ACL LOG failed pod=%s error=%s", pod_name, error)
            continue
        finally:
            client.close()

        reported = {kind[:3] for kind in seen}
        for entry in entries:
            user, reason, denied = (str(entry.get("username", "")), str(entry.get("reason", "")),
                                    str(entry.get("object", "")))
            count = int(entry.get("count", 1) or 1)
            key = (user, reason, denied, pod_name)
            # ACL LOG groups repeats into one entry and counts them.
            grown = count - seen.get(key, 0)
            if grown > 0:
                metrics.count_acl_denials(sr.namespace, sr.name, user, reason, grown)
            seen[key] = count
            if (user, reason, denied) in reported:
                continue
            reported.add((user, reason, denied))
            new_kinds += 1
            message = (f"ACL denied user {user!r}: reason {reason}, object {denied!r} "
                       f"({count} times on pod {pod_name})")
            kube.event(ref, "Warning", "ACLDenied", message, now)
            logger.warning("acl denial user=%s reason=%s object=%s pod=%s", user, reason,
                           denied, pod_name)
    return new_kinds

