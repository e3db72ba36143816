"""Conditions kept as a list keyed by type, with stable transition times."""

from datetime import datetime, timedelta, timezone

from secureredis import conditions

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
T1 = T0 + timedelta(minutes=5)


def test_set_condition_adds_entry():
    result = conditions.set_condition([], conditions.READY, True, "Ready", "ok", generation=3, now=T0)
    assert result == [{"type": "Ready", "status": "True", "reason": "Ready", "message": "ok",
                       "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 3}]


def test_same_status_keeps_transition_time():
    first = conditions.set_condition([], conditions.READY, False, "PodsNotReady", "0/1",
                                     generation=1, now=T0)
    second = conditions.set_condition(first, conditions.READY, False, "PodsNotReady", "0/1 still",
                                      generation=2, now=T1)
    entry = conditions.find(second, conditions.READY)
    assert entry["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert entry["message"] == "0/1 still"
    assert entry["observedGeneration"] == 2


def test_status_change_moves_transition_time():
    first = conditions.set_condition([], conditions.READY, False, "PodsNotReady", "",
                                     generation=1, now=T0)
    second = conditions.set_condition(first, conditions.READY, True, "Ready", "", generation=1,
                                      now=T1)
    assert conditions.find(second, conditions.READY)["lastTransitionTime"] == "2026-01-01T00:05:00Z"


def test_one_entry_per_type_in_fixed_order():
    conds = []
    for condition_type in (conditions.SECURITY_BASELINE, conditions.STALLED, conditions.READY,
                           conditions.READY):
        conds = conditions.set_condition(conds, condition_type, True, "R", "", generation=None,
                                         now=T0)
    assert [c["type"] for c in conds] == ["Ready", "Stalled", "SecurityBaseline"]


def test_unknown_status_text():
    conds = conditions.set_condition([], conditions.TLS_READY, None, "Unknown", "", generation=None,
                                     now=T0)
    assert conds[0]["status"] == "Unknown"
    assert "observedGeneration" not in conds[0]
