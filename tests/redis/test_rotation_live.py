"""Rotations on a real primary and replica while clients keep working.

Each test starts a fresh primary and replica, opens long-lived client
connections, and rotates passwords, the server certificate or the CA the
way the operator does, with a fake clock moved past each grace period. A
loop of new connections uses whatever the client Secrets hold at that
moment. Every test requires zero failed operations out of at least 20,000
and every long-lived connection alive at the end. The replica's link to the
primary must never go down: a thread samples it, and the primary's sync
counters, which grow on every new link, must not change.
"""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Iterator

import pytest

from secureredis import rotation

from rotation_harness import (
    APP_USER, RespConnection, Rig, RotationReport, Workload, authenticates,
    client_certificate_accepted, config_digest, digest, served_serial, sync_counters,
)

pytestmark = pytest.mark.redis

MIN_OPS = 20_000
PHASES = {
    rotation.PASSWORDS: ["Adding", "Published", "Removing", "Idle"],
    rotation.CERTIFICATES: ["Reloading", "Idle"],
    rotation.CA: ["TrustBoth", "Reissued", "Dropping", "Idle"],
}


@pytest.fixture
def rig(tmp_path) -> Iterator[Rig]:
    rig = Rig(tmp_path)
    try:
        rig.start()
        yield rig
    finally:
        rig.stop()


def assert_no_downtime(rig: Rig, workload: Workload, report: RotationReport,
                       sync_before: dict[str, str]) -> None:
    """Check the workload's counts, the long-lived connections and the replica's link."""
    assert workload.failures == []
    assert workload.ops >= MIN_OPS
    assert workload.survivors == workload.long_lived
    assert workload.link_samples > 0
    assert workload.link_down_samples == 0
    assert sync_counters(rig.deployment.primary.endpoint, rig.publisher) == sync_before
    by_phase = workload.ops_by_phase()
    quiet = [phase for phase in report.phases if not by_phase.get(f"{report.kind}:{phase}")]
    assert quiet == []


def test_password_rotation_under_load(rig):
    primary = rig.deployment.primary.endpoint
    before = {name: rig.publisher.current(name) for name in rig.client_names}
    sync_before = sync_counters(primary, rig.publisher)
    # Whether the old application password still logs in, after each reconcile.
    old_password_works: list[bool] = []

    def check_old_password() -> None:
        current = rig.publisher.current(APP_USER)
        old_password_works.append(all(authenticates(endpoint, current, before[APP_USER])
                                      for endpoint in rig.deployment.endpoints))

    with Workload(rig.deployment, rig.publisher) as workload:
        report = rig.rotate_under_load(rotation.PASSWORDS, workload, request="passwords-1",
                                       min_ops=MIN_OPS, after_reconcile=check_old_password)

    assert report.phases == PHASES[rotation.PASSWORDS]
    assert_no_downtime(rig, workload, report, sync_before)
    # Clients used the old password until the new one was published, then the new one.
    assert sorted(workload.new_connections) == [1, 2]
    # The old password works through the grace period and stops with the last reconcile.
    assert old_password_works == [True] * (report.reconciles - 1) + [False]

    after = {name: rig.publisher.current(name) for name in rig.client_names}
    unchanged = [name for name in after
                 if digest(after[name].password) == digest(before[name].password)]
    assert unchanged == []
    for endpoint in rig.deployment.endpoints:
        old_accepted = [name for name in after
                        if authenticates(endpoint, after[name], before[name])]
        new_rejected = [name for name in after
                       if not authenticates(endpoint, after[name], after[name])]
        assert old_accepted == [], endpoint.name
        assert new_rejected == [], endpoint.name

    generated = rig.material()
    config_command = generated.renames.get("config") or "CONFIG"
    masterauth = digest(generated.system["replication"].password)
    for endpoint in rig.deployment.endpoints:
        assert config_digest(endpoint, rig.publisher, config_command, "masterauth") == \
            masterauth, endpoint.name

    # A replica started now reads masterauth from private.conf and must log
    # in as the replication user with the new password alone.
    assert rig.deployment.restart_replica(rig.publisher)
    writer, _ = rig.publisher.connect(APP_USER, primary)
    try:
        assert writer.call("SET", "app:after-restart", "synced") == "OK"
    finally:
        writer.close()
    reader, _ = rig.publisher.connect(APP_USER, rig.deployment.replica.endpoint)
    try:
        assert wait_for_value(reader, "app:after-restart", "synced")
    finally:
        reader.close()


def wait_for_value(connection: RespConnection, key: str, value: str,
                   timeout: float = 5.0) -> bool:
    """Return True once GET ``key`` returns ``value`` on ``connection``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if connection.call("GET", key) == value:
            return True
        time.sleep(0.02)
    return False


def test_certificate_rotation_under_load(rig):
    primary = rig.deployment.primary.endpoint
    old_serial = rig.material().server.serial
    old_client = rig.publisher.current(APP_USER)
    sync_before = sync_counters(primary, rig.publisher)

    with Workload(rig.deployment, rig.publisher) as workload:
        report = rig.rotate_under_load(rotation.CERTIFICATES, workload,
                                       request="certificates-1", min_ops=MIN_OPS)

    assert report.phases == PHASES[rotation.CERTIFICATES]
    assert_no_downtime(rig, workload, report, sync_before)
    assert sorted(workload.new_connections) == [1, 2]

    new_serial = rig.material().server.serial
    new_client = rig.publisher.current(APP_USER)
    assert new_serial != old_serial
    assert Path(new_client.cert_file).read_text() != Path(old_client.cert_file).read_text()
    for endpoint in rig.deployment.endpoints:
        assert served_serial(endpoint, new_client) == new_serial, endpoint.name
        assert authenticates(endpoint, new_client, new_client), endpoint.name


def test_ca_rotation_under_load(rig):
    primary = rig.deployment.primary.endpoint
    old_client = rig.publisher.current(APP_USER)
    old_ca = rig.material().ca.serial
    sync_before = sync_counters(primary, rig.publisher)

    with Workload(rig.deployment, rig.publisher) as workload:
        report = rig.rotate_under_load(rotation.CA, workload, request="ca-1", min_ops=MIN_OPS)

    assert report.phases == PHASES[rotation.CA]
    assert_no_downtime(rig, workload, report, sync_before)
    # The client Secret changed three times (new CA trusted, certificate
    # reissued, old CA dropped) and new connections used every version.
    assert sorted(workload.new_connections) == [1, 2, 3, 4]

    generated = rig.material()
    new_client = rig.publisher.current(APP_USER)
    assert generated.ca.serial != old_ca
    assert generated.next_ca is None
    assert generated.trusted_cas == generated.ca.cert_pem
    for endpoint in rig.deployment.endpoints:
        assert served_serial(endpoint, new_client) == generated.server.serial, endpoint.name
        assert authenticates(endpoint, new_client, new_client), endpoint.name
        assert not client_certificate_accepted(endpoint, new_client.ca_file,
                                               old_client.cert_file, old_client.key_file), \
            endpoint.name
        # A client still on the old bundle can no longer verify the server.
        with pytest.raises(ssl.SSLCertVerificationError):
            RespConnection(endpoint, old_client.context())


@pytest.mark.parametrize("kind", [rotation.PASSWORDS, rotation.CERTIFICATES, rotation.CA])
def test_rotation_resumes_after_operator_crashes(rig, kind):
    primary = rig.deployment.primary.endpoint
    sync_before = sync_counters(primary, rig.publisher)
    rejected: list[str] = []
    checks = 0

    def check_published_logins() -> None:
        nonlocal checks
        checks += 1
        rejected.extend(f"{login} after reconcile {checks}" for login in rig.rejected_logins())

    with Workload(rig.deployment, rig.publisher) as workload:
        report = rig.rotate_under_load(kind, workload, request=f"{kind}-crash", crash=True,
                                       min_ops=MIN_OPS, after_reconcile=check_published_logins)

    assert report.phases == PHASES[kind]
    assert report.crashes == 3 * report.reconciles
    assert rejected == []
    assert checks == report.crashes + report.reconciles
    assert_no_downtime(rig, workload, report, sync_before)
    assert rig.material().rotations[kind]["phase"] == rotation.IDLE
