"""Operator metrics: what each recording function exposes, and the HTTP endpoint."""

from __future__ import annotations

import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from secureredis import __version__, cli, metrics

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)


class FakeClock:
    def __init__(self, moment: datetime):
        self.moment = moment

    def __call__(self) -> float:
        return self.moment.timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def recorder(clock) -> metrics.Metrics:
    return metrics.Metrics(CollectorRegistry(), clock=clock, process_metrics=False)


def sample(recorder: metrics.Metrics, metric: str, /, **labels: str) -> float | None:
    return recorder.registry.get_sample_value(metric, labels)


def test_reconcile_counted_by_result(recorder):
    recorder.observe_reconcile("ns", "cache", 0.02, "success")
    recorder.observe_reconcile("ns", "cache", 0.03, "success")
    recorder.observe_reconcile("ns", "bad", 0.01, "stalled")

    assert sample(recorder, "secure_redis_reconciles_total", result="success") == 2
    assert sample(recorder, "secure_redis_reconciles_total", result="stalled") == 1
    assert sample(recorder, "secure_redis_reconciles_total", result="error") is None


def test_reconcile_duration_histogram(recorder):
    recorder.observe_reconcile("ns", "cache", 0.02, "success")
    recorder.observe_reconcile("ns", "cache", 3.0, "success")

    name = "secure_redis_reconcile_duration_seconds"
    assert sample(recorder, f"{name}_count", result="success") == 2
    assert sample(recorder, f"{name}_sum", result="success") == pytest.approx(3.02)
    assert sample(recorder, f"{name}_bucket", result="success", le="0.025") == 1
    assert sample(recorder, f"{name}_bucket", result="success", le="5.0") == 2


def test_negative_duration_counts_as_zero(recorder):
    recorder.observe_reconcile("ns", "cache", -1.0, "success")

    name = "secure_redis_reconcile_duration_seconds"
    assert sample(recorder, f"{name}_sum", result="success") == 0
    assert sample(recorder, f"{name}_bucket", result="success", le="0.005") == 1


def test_reconcile_errors_per_object(recorder):
    recorder.observe_reconcile("ns", "cache", 0.5, "error")
    recorder.observe_reconcile("ns", "cache", 0.5, "error")
    recorder.observe_reconcile("other", "cache", 0.5, "success")

    assert sample(recorder, "secure_redis_reconcile_errors_total",
                  namespace="ns", name="cache") == 2
    assert sample(recorder, "secure_redis_reconcile_errors_total",
                  namespace="other", name="cache") is None
    assert sample(recorder, "secure_redis_reconciles_total", result="error") == 2


def test_unknown_reconcile_result_rejected(recorder):
    with pytest.raises(ValueError, match="result must be one of success, stalled, error"):
        recorder.observe_reconcile("ns", "cache", 0.1, "ok")


def test_rotations_by_kind_and_result(recorder):
    recorder.observe_rotation("passwords", "started")
    recorder.observe_rotation("passwords", "completed")
    recorder.observe_rotation("certificates", "failed")

    assert sample(recorder, "secure_redis_rotations_total",
                  kind="passwords", result="started") == 1
    assert sample(recorder, "secure_redis_rotations_total",
                  kind="passwords", result="completed") == 1
    assert sample(recorder, "secure_redis_rotations_total",
                  kind="certificates", result="failed") == 1


@pytest.mark.parametrize("kind, result", [("tls", "completed"), ("ca", "done")])
def test_unknown_rotation_labels_rejected(recorder, kind, result):
    with pytest.raises(ValueError):
        recorder.observe_rotation(kind, result)


def test_certificate_expiry_gauges(recorder):
    not_after = NOW + timedelta(days=90)
    recorder.set_certificate_expiry("ns", "cache", not_after)

    labels = {"namespace": "ns", "name": "cache", "certificate": "server"}
    assert sample(recorder, "secure_redis_certificate_expiry_timestamp_seconds",
                  **labels) == not_after.timestamp()
    assert sample(recorder, "secure_redis_certificate_seconds_to_expiry",
                  **labels) == 90 * 86400


def test_seconds_to_expiry_follows_clock(recorder, clock):
    recorder.set_certificate_expiry("ns", "cache", NOW + timedelta(hours=1), "ca")
    labels = {"namespace": "ns", "name": "cache", "certificate": "ca"}

    clock.moment = NOW + timedelta(minutes=45)
    assert sample(recorder, "secure_redis_certificate_seconds_to_expiry", **labels) == 900

    clock.moment = NOW + timedelta(hours=2)
    assert sample(recorder, "secure_redis_certificate_seconds_to_expiry", **labels) == -3600


def test_renewed_certificate_replaces_expiry(recorder):
    recorder.set_certificate_expiry("ns", "cache", NOW + timedelta(days=1))
    recorder.set_certificate_expiry("ns", "cache", NOW + timedelta(days=90))

    assert sample(recorder, "secure_redis_certificate_seconds_to_expiry",
                  namespace="ns", name="cache", certificate="server") == 90 * 86400


def test_naive_expiry_rejected(recorder):
    with pytest.raises(ValueError, match="timezone-aware"):
        recorder.set_certificate_expiry("ns", "cache", datetime(2030, 1, 1))


def test_acl_denials_by_user_and_reason(recorder):
    recorder.count_acl_denials("ns", "cache", "cache_reader", "command")
    recorder.count_acl_denials("ns", "cache", "cache_reader", "command", count=4)
    recorder.count_acl_denials("ns", "cache", "app_service", "key")

    name = "secure_redis_acl_denials_total"
    assert sample(recorder, name, namespace="ns", name="cache", user="cache_reader",
                  reason="command") == 5
    assert sample(recorder, name, namespace="ns", name="cache", user="app_service",
                  reason="key") == 1


def test_negative_counts_rejected(recorder):
    with pytest.raises(ValueError):
        recorder.count_acl_denials("ns", "cache", "u", "auth", count=-1)
    with pytest.raises(ValueError):
        recorder.count_api_writes(-2)


def test_api_writes_counted(recorder):
    recorder.count_api_writes(3)
    recorder.count_api_writes(0)

    assert sample(recorder, "secure_redis_api_writes_total") == 3


def test_forget_removes_object_series(recorder):
    recorder.set_certificate_expiry("ns", "cache", NOW + timedelta(days=1))
    recorder.set_certificate_expiry("ns", "cache", NOW + timedelta(days=900), "ca")
    recorder.count_acl_denials("ns", "cache", "u", "auth")
    recorder.observe_reconcile("ns", "cache", 0.1, "error")
    recorder.set_certificate_expiry("ns", "kept", NOW + timedelta(days=1))

    recorder.forget("ns", "cache")
    recorder.forget("ns", "never-seen")

    for certificate in ("server", "ca"):
        assert sample(recorder, "secure_redis_certificate_seconds_to_expiry",
                      namespace="ns", name="cache", certificate=certificate) is None
    assert sample(recorder, "secure_redis_acl_denials_total",
                  namespace="ns", name="cache", user="u", reason="auth") is None
    assert sample(recorder, "secure_redis_reconcile_errors_total",
                  namespace="ns", name="cache") is None
    assert sample(recorder, "secure_redis_certificate_seconds_to_expiry",
                  namespace="ns", name="kept", certificate="server") is not None
    # Totals across objects stay: they are counters of the operator itself.
    assert sample(recorder, "secure_redis_reconciles_total", result="error") == 1


def test_build_info_has_version(recorder):
    assert sample(recorder, "secure_redis_operator_build_info", version=__version__) == 1


def test_process_metrics_included():
    recorder = metrics.Metrics(CollectorRegistry())

    assert recorder.registry.get_sample_value("process_resident_memory_bytes") is not None


def test_module_functions_use_default(monkeypatch, recorder):
    monkeypatch.setattr(metrics, "DEFAULT", recorder)

    metrics.observe_reconcile("ns", "cache", 0.1, "success")
    metrics.observe_rotation("ca", "completed")
    metrics.set_certificate_expiry("ns", "cache", NOW + timedelta(seconds=10))
    metrics.count_acl_denials("ns", "cache", "u", "auth")
    metrics.count_api_writes(2)
    metrics.forget("ns", "cache")

    assert sample(recorder, "secure_redis_reconciles_total", result="success") == 1
    assert sample(recorder, "secure_redis_rotations_total", kind="ca", result="completed") == 1
    assert sample(recorder, "secure_redis_api_writes_total") == 2
    assert sample(recorder, "secure_redis_acl_denials_total",
                  namespace="ns", name="cache", user="u", reason="auth") is None


def test_server_serves_every_metric(recorder):
    recorder.observe_reconcile("ns", "cache", 0.1, "success")
    recorder.observe_rotation("passwords", "completed")
    recorder.set_certificate_expiry("ns", "cache", NOW + timedelta(days=1))
    recorder.count_acl_denials("ns", "cache", "u", "auth")
    recorder.count_api_writes(1)

    server = metrics.start_server(0, "127.0.0.1", metrics=recorder)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()

    families = {family.name for family in text_string_to_metric_families(text)}
    assert {
        "secure_redis_reconciles",
        "secure_redis_reconcile_duration_seconds",
        "secure_redis_reconcile_errors",
        "secure_redis_rotations",
        "secure_redis_certificate_expiry_timestamp_seconds",
        "secure_redis_certificate_seconds_to_expiry",
        "secure_redis_acl_denials",
        "secure_redis_api_writes",
        "secure_redis_operator_build_info",
    } <= families


def run_arguments(*arguments: str):
    return cli.build_parser().parse_args(["run", *arguments])


def test_run_metrics_port_default():
    assert run_arguments().metrics_port == 8081


def test_run_metrics_port_zero_disables():
    assert run_arguments("--metrics-port", "0").metrics_port == 0


@pytest.mark.parametrize("value", ["-1", "65536", "http"])
def test_run_metrics_port_invalid(capsys, value):
    with pytest.raises(SystemExit):
        run_arguments("--metrics-port", value)

    assert "--metrics-port" in capsys.readouterr().err
