"""Password and certificate rotation as state machines over the material.

Every rotation is a short list of phases. ``plan`` runs before the children
are applied: it starts a rotation (new passwords as *pending*, a new leaf
certificate, a new CA that is trusted before it signs) and moves phases that
only wait for time. ``advance`` runs after the operator has brought every
pod in line with the material and moves phases that wait for the servers.
Both are pure: the caller persists the returned material (in the operator's
Secrets) and applies the children, so a rotation interrupted by a restart
resumes from its last persisted phase.

Passwords (``passwords``)::

    Idle -> Adding -> Published -> Removing -> Idle

- Adding: new passwords are pending. users.acl and every server accept old
  and new; clients still get the old one.
- Published: once every server accepts the new password, it is published in
  the user's Secret (and becomes masterauth for replication).
- Removing: after the grace period, the old password is dropped from the
  material, so the servers and users.acl forget it. A user always keeps at
  least its newest password.

Leaf certificates (``certificates``)::

    Idle -> Reloading -> Idle

CA (``ca``)::

    Idle -> TrustBoth -> Reissued -> Dropping -> Idle

- TrustBoth: the new CA joins the trusted bundle everywhere; it signs nothing.
- Reissued: after the grace period, the new CA signs new server and client
  certificates; the old CA is still trusted, so old client certificates work.
- Dropping: after another grace period, the old CA leaves the bundle.

With ``spec.tls.issuer: secret`` the user owns the CA, so the operator never
makes one. A CA rotation starts when the CA in the user's Secret (passed as
``external_ca``) differs from the one in use, and runs the same phases.

Time comes from the caller (``now``), so tests move the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Mapping

from . import credentials, pki
from .conditions import timestamp
from .material import Credential, Material, client_certificate, server_certificate
from .spec import SecureRedis

PASSWORDS = "passwords"
CERTIFICATES = "certificates"
CA = "ca"
IDLE = "Idle"

ROTATE_PASSWORDS_ANNOTATION = "secureredis.io/rotate-passwords"
ROTATE_CERTIFICATES_ANNOTATION = "secureredis.io/rotate-certificates"
ROTATE_CA_ANNOTATION = "secureredis.io/rotate-ca"
ANNOTATIONS = {PASSWORDS: ROTATE_PASSWORDS_ANNOTATION,
               CERTIFICATES: ROTATE_CERTIFICATES_ANNOTATION,
               CA: ROTATE_CA_ANNOTATION}


@dataclass(frozen=True)
class Convergence:
    """Observations of the servers after the operator brought them in line.

    ``all_pods`` is True only when every pod of the deployment was reached;
    the other flags mean "on every pod".
    """

    all_pods: bool = False
    acl_synced: bool = False
    serving_current_certificate: bool = False
    trusts_next_ca: bool = False
    rejects_previous_ca: bool = False


@dataclass(frozen=True)
class Step:
    """A phase change, for logs and Events."""

    kind: str
    phase: str
    message: str


def parse_timestamp(text: str) -> datetime:
    """Parse a status timestamp such as ``2026-06-01T12:00:00Z``."""
    return _parse(text)


def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def state(material: Material, kind: str) -> dict[str, Any]:
    return dict(material.rotations.get(kind) or {"phase": IDLE})


def _with_state(material: Material, kind: str, new_state: Mapping[str, Any]) -> Material:
    rotations = {**material.rotations, kind: dict(new_state)}
    return replace(material, rotations=rotations)


def _requested(kind: str, annotations: Mapping[str, str], current: Mapping[str, Any]) -> str | None:
    """Return the annotation value when it requests a rotation not yet handled."""
    value = (annotations or {}).get(ANNOTATIONS[kind], "")
    if value and value != current.get("handledRequest"):
        return value
    return None


def plan(sr: SecureRedis, material: Material, *, annotations: Mapping[str, str],
         now: datetime, external_ca: pki.CertKey | None = None) -> tuple[Material, list[Step]]:
    """Start due rotations and move phases that wait only for time."""
    steps: list[Step] = []
    material = _plan_passwords(sr, material, annotations, now, steps)
    material = _plan_ca(sr, material, annotations, now, steps, external_ca)
    material = _plan_certificates(sr, material, annotations, now, steps)
    return material, steps


def advance(sr: SecureRedis, material: Material, observed: Convergence, *,
            now: datetime) -> tuple[Material, list[Step]]:
    """Move phases whose server-side work ``observed`` shows is done everywhere."""
    steps: list[Step] = []
    material = _advance_passwords(sr, material, observed, now, steps)
    material = _advance_certificates(material, observed, now, steps)
    material = _advance_ca(sr, material, observed, now, steps)
    return material, steps


# Passwords


def _external_users(sr: SecureRedis) -> set[str]:
    return {u.name for u in sr.users if u.password_secret_ref is not None}


def _plan_passwords(sr: SecureRedis, material: Material, annotations: Mapping[str, str],
                    now: datetime, steps: list[Step]) -> Material:
    current = state(material, PASSWORDS)
    phase = current["phase"]
    current.setdefault("since", timestamp(now))

    if phase == IDLE:
        request = _requested(PASSWORDS, annotations, current)
        due = _next_due(sr, current)
        scheduled = due is not None and now >= due
        external_change = any(c.pending for c in material.users.values())
        if not (request or scheduled or external_change):
            return _with_state(material, PASSWORDS, {**current, **_due_field(sr, current)})

        if request:
            trigger = "request"
        elif scheduled:
            trigger = "schedule"
        else:
            trigger = "passwordSecretRef"
        users, system = dict(material.users), dict(material.system)
        if trigger != "passwordSecretRef":
            # Users with a passwordSecretRef rotate when their own Secret
            # changes; every other user and every system user gets a new one.
            external = _external_users(sr)
            users = {name: c if name in external or c.pending else
                     replace(c, pending=(credentials.generate_password(),))
                     for name, c in users.items()}
            system = {role: c if c.pending else
                      replace(c, pending=(credentials.generate_password(),))
                      for role, c in system.items()}
        new_state = {"phase": "Adding", "startedAt": timestamp(now), "trigger": trigger,
                     "since": current["since"]}
        if request:
            new_state["handledRequest"] = request
        elif current.get("handledRequest"):
            new_state["handledRequest"] = current["handledRequest"]
        steps.append(Step(PASSWORDS, "Adding", f"password rotation started by {trigger}: new "
                          "passwords are being added to every server"))
        return _with_state(replace(material, users=users, system=system), PASSWORDS, new_state)

    if phase == "Published":
        published = _parse(current["publishedAt"])
        # "settled" means one converge reached every server after publishing,
        # so masterauth everywhere is the new replication password before
        # any server forgets the old one.
        if now < published + sr.rotation.grace_period or not current.get("settled"):
            return material
        users = {n: _keep_newest(c) for n, c in material.users.items()}
        system = {r: _keep_newest(c) for r, c in material.system.items()}
        steps.append(Step(PASSWORDS, "Removing", "grace period over: old passwords are being "
                          "removed from every server"))
        return _with_state(replace(material, users=users, system=system), PASSWORDS,
                           {**current, "phase": "Removing"})
    return material


def _keep_newest(credential: Credential) -> Credential:
    return replace(credential, passwords=credential.passwords[-1:])


def _next_due(sr: SecureRedis, current: Mapping[str, Any]) -> datetime | None:
    if sr.rotation.interval is None:
        return None
    last = current.get("completedAt") or current.get("since")
    return _parse(last) + sr.rotation.interval if last else None


def _due_field(sr: SecureRedis, current: Mapping[str, Any]) -> dict[str, str]:
    due = _next_due(sr, current)
    return {"nextDue": timestamp(due)} if due else {}


def _advance_passwords(sr: SecureRedis, material: Material, observed: Convergence,
                       now: datetime, steps: list[Step]) -> Material:
    current = state(material, PASSWORDS)
    done = observed.all_pods and observed.acl_synced
    if current["phase"] == "Adding" and done:
        users = {n: _promote(c, now) for n, c in material.users.items()}
        system = {r: _promote(c, now) for r, c in material.system.items()}
        steps.append(Step(PASSWORDS, "Published", "every server accepts the new passwords; "
                          "they are now published in the users' Secrets"))
        return _with_state(replace(material, users=users, system=system), PASSWORDS,
                           {**current, "phase": "Published", "publishedAt": timestamp(now)})
    if current["phase"] == "Published" and done and not current.get("settled"):
        return _with_state(material, PASSWORDS, {**current, "settled": True})
    if current["phase"] == "Removing" and done:
        steps.append(Step(PASSWORDS, IDLE, "old passwords removed from every server; password "
                          "rotation complete"))
        completed = {k: v for k, v in current.items() if k not in ("publishedAt", "settled")}
        completed.update({"phase": IDLE, "completedAt": timestamp(now)})
        completed.update(_due_field(sr, completed))
        return _with_state(material, PASSWORDS, completed)
    return material


def _promote(credential: Credential, now: datetime) -> Credential:
    if not credential.pending:
        return credential
    return replace(credential, passwords=credential.passwords + credential.pending, pending=(),
                   published_at=timestamp(now))


# Leaf certificates


def _reissue(sr: SecureRedis, material: Material, signer: pki.CertKey, now: datetime) -> Material:
    """Issue a new server certificate and new client certificates from ``signer``."""
    users = {n: replace(c, client_cert=client_certificate(sr, signer, c.username, now))
             for n, c in material.users.items()}
    system = {r: replace(c, client_cert=client_certificate(sr, signer, c.username, now))
              if c.client_cert else c for r, c in material.system.items()}
    return replace(material, server=server_certificate(sr, signer, now), users=users,
                   system=system)


def _plan_certificates(sr: SecureRedis, material: Material, annotations: Mapping[str, str],
                       now: datetime, steps: list[Step]) -> Material:
    current = state(material, CERTIFICATES)
    if current["phase"] != IDLE or state(material, CA)["phase"] != IDLE:
        return material
    renewal = material.server.not_after - sr.tls.renew_before
    request = _requested(CERTIFICATES, annotations, current)
    if not request and now < renewal:
        return _with_state(material, CERTIFICATES,
                           {**current, "nextDue": timestamp(renewal)})
    if not request and capped_by_ca(material):
        # A new certificate would expire with the CA too, so re-issuing would
        # loop. Only a new CA helps, which with issuer secret the user supplies.
        return _with_state(material, CERTIFICATES,
                           {k: v for k, v in current.items() if k != "nextDue"})

    material = _reissue(sr, material, material.ca, now)
    new_state = {"phase": "Reloading", "startedAt": timestamp(now),
                 "trigger": "request" if request else "expiry",
                 "handledRequest": request or current.get("handledRequest", "")}
    steps.append(Step(CERTIFICATES, "Reloading", f"new server certificate "
                      f"{material.server.serial} issued; servers reload it once it is mounted"))
    return _with_state(material, CERTIFICATES, new_state)


def capped_by_ca(material: Material) -> bool:
    """Return True if the server certificate already lives as long as its CA allows."""
    return material.server.not_after >= material.ca.not_after


def _advance_certificates(material: Material, observed: Convergence, now: datetime,
                          steps: list[Step]) -> Material:
    current = state(material, CERTIFICATES)
    if current["phase"] == "Reloading" and observed.all_pods and \
            observed.serving_current_certificate:
        steps.append(Step(CERTIFICATES, IDLE, f"every server presents certificate "
                          f"{material.server.serial}; certificate rotation complete"))
        return _with_state(material, CERTIFICATES,
                           {**current, "phase": IDLE, "completedAt": timestamp(now)})
    return material


# CA


def ca_renewal_time(sr: SecureRedis, material: Material) -> datetime:
    """Return when the CA is replaced: early enough for a full leaf lifetime under the new CA."""
    margin = sr.tls.certificate_duration + sr.tls.renew_before
    return material.ca.not_after - margin


def _plan_ca(sr: SecureRedis, material: Material, annotations: Mapping[str, str],
             now: datetime, steps: list[Step], external_ca: pki.CertKey | None) -> Material:
    current = state(material, CA)
    phase = current["phase"]

    if phase == IDLE and sr.tls.issuer == "secret":
        # The user renews the CA by updating the Secret, so nothing is ever due.
        current.pop("nextDue", None)
        if external_ca is None or external_ca.cert_pem == material.ca.cert_pem:
            return _with_state(material, CA, current)
        return _start_ca_rotation(material, external_ca, "secretName", current, now, steps,
                                  "the CA in spec.tls.secretName changed; it is trusted beside "
                                  "the old one and signs nothing until every server trusts it")

    if phase == IDLE:
        request = _requested(CA, annotations, current)
        renewal = ca_renewal_time(sr, material)
        if not request and now < renewal:
            return _with_state(material, CA, {**current, "nextDue": timestamp(renewal)})
        next_ca = pki.make_ca(f"secure-redis {sr.namespace}/{sr.name} CA {now:%Y%m%d}",
                              now=now, duration=sr.tls.ca_duration,
                              algorithm=sr.tls.key_algorithm)
        return _start_ca_rotation(material, next_ca, "request" if request else "expiry",
                                  {**current, "handledRequest": request or
                                   current.get("handledRequest", "")}, now, steps,
                                  "new CA created and trusted beside the old one; it signs "
                                  "nothing until every server and client trusts it")

    if phase == "Reissued" and current.get("servingSince"):
        if now < _parse(current["servingSince"]) + sr.rotation.grace_period:
            return material
        steps.append(Step(CA, "Dropping", "grace period over: the old CA leaves the trusted "
                          "bundle"))
        return _with_state(replace(material, ca_bundle=material.ca.cert_pem), CA,
                           {**current, "phase": "Dropping"})
    return material


def _start_ca_rotation(material: Material, next_ca: pki.CertKey, trigger: str,
                       current: Mapping[str, Any], now: datetime, steps: list[Step],
                       message: str) -> Material:
    steps.append(Step(CA, "TrustBoth", message))
    bundle = material.ca.cert_pem + next_ca.cert_pem
    new_state = {"phase": "TrustBoth", "startedAt": timestamp(now), "trigger": trigger,
                 "handledRequest": current.get("handledRequest", "")}
    return _with_state(replace(material, next_ca=next_ca, ca_bundle=bundle), CA, new_state)


def _advance_ca(sr: SecureRedis, material: Material, observed: Convergence, now: datetime,
                steps: list[Step]) -> Material:
    current = state(material, CA)
    phase = current["phase"]

    if phase == "TrustBoth" and observed.all_pods and observed.trusts_next_ca:
        trusted_since = current.get("trustedSince") or timestamp(now)
        if now < _parse(trusted_since) + sr.rotation.grace_period:
            return _with_state(material, CA, {**current, "trustedSince": trusted_since})
        previous = material.ca
        material = replace(material, ca=material.next_ca, next_ca=None)
        material = _reissue(sr, material, material.ca, now)
        steps.append(Step(CA, "Reissued", "every server trusts the new CA; it now signs the "
                          "server and client certificates"))
        return _with_state(material, CA, {
            **current, "phase": "Reissued", "trustedSince": trusted_since,
            "previousCA": {"cert": previous.cert_pem, "key": previous.key_pem}})

    if phase == "Reissued" and observed.all_pods and observed.serving_current_certificate \
            and not current.get("servingSince"):
        return _with_state(material, CA, {**current, "servingSince": timestamp(now)})

    if phase == "Dropping" and observed.all_pods and observed.rejects_previous_ca:
        steps.append(Step(CA, IDLE, "the old CA has left the trusted bundle of every server; "
                          "CA rotation complete"))
        completed = {k: v for k, v in current.items()
                     if k not in ("previousCA", "trustedSince", "servingSince")}
        completed.update({"phase": IDLE, "completedAt": timestamp(now)})
        return _with_state(material, CA, completed)
    return material


def previous_ca(material: Material) -> pki.CertKey | None:
    raw = state(material, CA).get("previousCA")
    return pki.CertKey(raw["cert"], raw["key"]) if raw else None


def previous_ca_to_drop(material: Material) -> pki.CertKey | None:
    """Return the CA that Dropping must see rejected, or None if there is none.

    A user's new CA can be signed by the old one (a self-signed CA replaced
    by an intermediate under it). The old CA then stays in the chain that
    is trusted on purpose, and waiting for servers to reject it would never end.
    """
    previous = previous_ca(material)
    if previous is None:
        return None
    first = previous.cert_pem.split("-----END CERTIFICATE-----")[0]
    return None if first in material.ca.cert_pem else previous


def status_entries(material: Material) -> list[dict[str, str]]:
    """Return status.rotations: phase and times of each kind, never key material."""
    entries = []
    for kind in (PASSWORDS, CERTIFICATES, CA):
        current = state(material, kind)
        entry = {"kind": kind, "phase": current["phase"]}
        for field_name in ("startedAt", "completedAt", "nextDue"):
            if current.get(field_name):
                entry[field_name] = current[field_name]
        entries.append(entry)
    return entries


def in_progress(material: Material) -> list[str]:
    return [kind for kind in (PASSWORDS, CERTIFICATES, CA) if state(material, kind)["phase"] != IDLE]

