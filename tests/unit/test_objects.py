"""Desired-versus-live comparison that decides whether a child needs a write."""

import pytest

from secureredis import objects


@pytest.mark.parametrize(
    ("live", "desired", "expected"),
    [
        ({"a": 1, "b": 2}, {"a": 1}, True),
        ({"a": 1}, {"a": 2}, False),
        ({"a": {"x": 1, "y": 2}}, {"a": {"x": 1}}, True),
        ({"a": [{"x": 1, "extra": 0}]}, {"a": [{"x": 1}]}, True),
        ({"a": [{"x": 1}, {"x": 2}]}, {"a": [{"x": 1}]}, False),
        ({}, {"a": None}, False),
        ({"a": "1"}, {"a": 1}, False),
        ({"data": {"k": "dg=="}}, {"data": {"k": "dg=="}}, True),
    ],
    ids=["extra-live-field", "changed-value", "nested-subset", "list-item-subset",
         "list-length-differs", "missing-key", "type-differs", "secret-data-equal"],
)
def test_covers_cases(live, desired, expected):
    assert objects.covers(live, desired) is expected


def test_content_hash_ignores_key_order():
    assert objects.content_hash({"a": 1, "b": [1, 2]}) == objects.content_hash({"b": [1, 2], "a": 1})


def test_with_hash_adds_annotation():
    obj = {"kind": "ConfigMap", "metadata": {"name": "x", "annotations": {"keep": "me"}}}
    hashed = objects.with_hash(obj)
    annotations = hashed["metadata"]["annotations"]
    assert annotations["keep"] == "me"
    assert annotations[objects.HASH_ANNOTATION] == objects.content_hash(obj)
    assert objects.HASH_ANNOTATION not in obj["metadata"]["annotations"]


def test_applied_hash_of_missing_object():
    assert objects.applied_hash(None) is None
    assert objects.applied_hash({"metadata": {}}) is None
