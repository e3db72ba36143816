"""Rotation state machines, driven by a clock the tests move."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from secureredis import material, reconcile, rotation, spec

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
EVERYWHERE = rotation.Convergence(all_pods=True, acl_synced=True,
                                  serving_current_certificate=True, trusts_next_ca=True,
                                  rejects_previous_ca=True)
NOWHERE = rotation.Convergence()


def load(extra: dict | None = None) -> spec.SecureRedis:
    body = {"metadata": {"name": "cache", "namespace": "ns"},
            "spec": {"acl": {"users": [{"name": "app", "rules": ["~app:*", "+get"]}],
                             "rotation": {"interval": "720h", "gracePeriod": "1h"}},
                     **(extra or {})}}
    return spec.load(body)


@pytest.fixture(scope="module")
def sr():
    return load()


@pytest.fixture(scope="module")
def start(sr):
    generated = material.ensure(sr, None, now=T0)
    planned, _ = rotation.plan(sr, generated, annotations={}, now=T0)
    return planned


def phase(generated, kind=rotation.PASSWORDS) -> str:
    return rotation.state(generated, kind)["phase"]


def test_idle_without_trigger(sr, start):
    planned, steps = rotation.plan(sr, start, annotations={}, now=T0 + timedelta(days=1))

    assert phase(planned) == rotation.IDLE
    assert steps == []
    assert planned.users == start.users


def test_request_starts_adding(sr, start):
    planned, steps = rotation.plan(sr, start, annotations={
        rotation.ROTATE_PASSWORDS_ANNOTATION: "now-1"}, now=T0)

    app = planned.users["app"]
    assert phase(planned) == "Adding"
    assert len(app.pending) == 1
    assert app.password == start.users["app"].password
    assert len(app.hashes) == 2
    assert all(len(c.pending) == 1 for c in planned.system.values())
    assert [s.phase for s in steps] == ["Adding"]


def test_same_request_handled_once(sr, start):
    annotations = {rotation.ROTATE_PASSWORDS_ANNOTATION: "now-1"}
    adding, _ = rotation.plan(sr, start, annotations=annotations, now=T0)
    published, _ = rotation.advance(sr, adding, EVERYWHERE, now=T0)
    published, _ = rotation.advance(sr, published, EVERYWHERE, now=T0)
    removing, _ = rotation.plan(sr, published, annotations=annotations, now=T0 + timedelta(hours=2))
    idle, _ = rotation.advance(sr, removing, EVERYWHERE, now=T0 + timedelta(hours=2))

    again, steps = rotation.plan(sr, idle, annotations=annotations, now=T0 + timedelta(hours=3))

    assert phase(again) == rotation.IDLE
    assert steps == []


def test_adding_waits_for_every_pod(sr, start):
    adding, _ = rotation.plan(sr, start, annotations={
        rotation.ROTATE_PASSWORDS_ANNOTATION: "x"}, now=T0)

    partial = rotation.Convergence(all_pods=False, acl_synced=True)
    still, steps = rotation.advance(sr, adding, partial, now=T0)

    assert phase(still) == "Adding"
    assert steps == []


def test_full_password_cycle(sr, start):
    old = start.users["app"].password
    adding, _ = rotation.plan(sr, start, annotations={
        rotation.ROTATE_PASSWORDS_ANNOTATION: "x"}, now=T0)
    new = adding.users["app"].pending[0]

    published, _ = rotation.advance(sr, adding, EVERYWHERE, now=T0 + timedelta(minutes=1))
    assert phase(published) == "Published"
    assert published.users["app"].password == new
    assert published.users["app"].passwords == (old, new)

    unsettled, _ = rotation.plan(sr, published, annotations={}, now=T0 + timedelta(minutes=62))
    assert phase(unsettled) == "Published"
    published, _ = rotation.advance(sr, published, EVERYWHERE, now=T0 + timedelta(minutes=2))

    early, _ = rotation.plan(sr, published, annotations={}, now=T0 + timedelta(minutes=30))
    assert phase(early) == "Published"
    assert early.users["app"].passwords == (old, new)

    removing, _ = rotation.plan(sr, published, annotations={}, now=T0 + timedelta(minutes=62))
    assert phase(removing) == "Removing"
    assert removing.users["app"].passwords == (new,)

    waiting, _ = rotation.advance(sr, removing, NOWHERE, now=T0 + timedelta(minutes=63))
    assert phase(waiting) == "Removing"

    done, steps = rotation.advance(sr, removing, EVERYWHERE, now=T0 + timedelta(minutes=64))
    assert phase(done) == rotation.IDLE
    assert rotation.state(done, rotation.PASSWORDS)["completedAt"] == "2026-06-01T13:04:00Z"
    assert rotation.state(done, rotation.PASSWORDS)["nextDue"] == "2026-07-01T13:04:00Z"
    assert [s.phase for s in steps] == [rotation.IDLE]


def test_last_password_never_removed(sr, start):
    removing, _ = rotation.plan(sr, start, annotations={}, now=T0)
    forced = rotation._with_state(removing, rotation.PASSWORDS,
                                  {"phase": "Published", "publishedAt": "2026-06-01T00:00:00Z",
                                   "settled": True})

    trimmed, _ = rotation.plan(sr, forced, annotations={}, now=T0)

    assert all(len(c.passwords) == 1 for c in trimmed.users.values())
    assert trimmed.users["app"].password == start.users["app"].password


def test_schedule_starts_rotation(sr, start):
    due, _ = rotation.plan(sr, start, annotations={}, now=T0 + timedelta(hours=721))

    assert phase(due) == "Adding"
    assert rotation.state(due, rotation.PASSWORDS)["trigger"] == "schedule"


def test_material_roundtrip_keeps_state(sr, start):
    adding, _ = rotation.plan(sr, start, annotations={
        rotation.ROTATE_PASSWORDS_ANNOTATION: "x"}, now=T0)

    restored = material.from_json(material.to_json(adding))

    assert restored == adding
    assert phase(restored) == "Adding"


def test_external_password_change_rotates_only_that_user():
    sr = load({"acl": {"users": [
        {"name": "app", "rules": ["+get"]},
        {"name": "ext", "rules": ["+get"], "passwordSecretRef": {"name": "ext-secret"}}]}})
    first = material.ensure(sr, None, now=T0, external_passwords={"ext": "A" * 40})
    first, _ = rotation.plan(sr, first, annotations={}, now=T0)

    changed = material.ensure(sr, first, now=T0, external_passwords={"ext": "B" * 40})
    planned, _ = rotation.plan(sr, changed, annotations={}, now=T0)

    assert phase(planned) == "Adding"
    assert rotation.state(planned, rotation.PASSWORDS)["trigger"] == "passwordSecretRef"
    assert planned.users["app"].pending == ()
    assert len(planned.users["ext"].pending) == 1


def test_certificate_renewed_before_expiry(sr, start):
    renewal = start.server.not_after - sr.tls.renew_before
    before, _ = rotation.plan(sr, start, annotations={}, now=renewal - timedelta(hours=1))
    assert phase(before, rotation.CERTIFICATES) == rotation.IDLE

    renewing, _ = rotation.plan(sr, start, annotations={}, now=renewal + timedelta(hours=1))
    assert phase(renewing, rotation.CERTIFICATES) == "Reloading"
    assert renewing.server.serial != start.server.serial
    assert renewing.ca == start.ca
    assert renewing.users["app"].client_cert != start.users["app"].client_cert

    done, _ = rotation.advance(sr, renewing, EVERYWHERE, now=renewal + timedelta(hours=2))
    assert phase(done, rotation.CERTIFICATES) == rotation.IDLE


def test_ca_rotation_phases(sr, start):
    annotations = {rotation.ROTATE_CA_ANNOTATION: "1"}
    trust, _ = rotation.plan(sr, start, annotations=annotations, now=T0)
    assert phase(trust, rotation.CA) == "TrustBoth"
    assert trust.next_ca is not None
    assert trust.ca == start.ca
    assert trust.trusted_cas.count("BEGIN CERTIFICATE") == 2

    waiting, _ = rotation.advance(sr, trust, EVERYWHERE, now=T0)
    assert phase(waiting, rotation.CA) == "TrustBoth"

    reissued, _ = rotation.advance(sr, waiting, EVERYWHERE, now=T0 + timedelta(hours=2))
    assert phase(reissued, rotation.CA) == "Reissued"
    assert reissued.ca == trust.next_ca
    assert reissued.server.certificate.issuer == reissued.ca.certificate.subject
    assert rotation.previous_ca(reissued) == start.ca

    serving, _ = rotation.advance(sr, reissued, EVERYWHERE, now=T0 + timedelta(hours=2))
    dropping, _ = rotation.plan(sr, serving, annotations=annotations, now=T0 + timedelta(hours=4))
    assert phase(dropping, rotation.CA) == "Dropping"
    assert dropping.trusted_cas == dropping.ca.cert_pem

    done, _ = rotation.advance(sr, dropping, EVERYWHERE, now=T0 + timedelta(hours=4))
    assert phase(done, rotation.CA) == rotation.IDLE
    assert rotation.previous_ca(done) is None


def test_status_entries_have_no_keys(sr, start):
    trust, _ = rotation.plan(sr, start, annotations={rotation.ROTATE_CA_ANNOTATION: "1"}, now=T0)
    reissued, _ = rotation.advance(sr, trust, EVERYWHERE, now=T0 + timedelta(hours=2))

    entries = rotation.status_entries(reissued)

    assert [e["kind"] for e in entries] == ["passwords", "certificates", "ca"]
    assert "PRIVATE KEY" not in str(entries)


def test_published_password_sets_last_rotation(sr, start):
    adding, _ = rotation.plan(sr, start, annotations={rotation.ROTATE_PASSWORDS_ANNOTATION: "7"},
                              now=T0)
    assert reconcile.user_status(sr, adding, "app") == {"name": "app",
                                                        "secretName": "cache-user-app"}

    published, _ = rotation.advance(sr, adding, EVERYWHERE, now=T0 + timedelta(minutes=3))
    stored = material.from_json(material.to_json(published))

    entry = reconcile.user_status(sr, stored, "app")
    assert entry["lastRotation"] == "2026-06-01T12:03:00Z"
