"""The twin document's rules (apps/iot/twin.py): merge, null deletion, metadata, delta
with nested paths and whole arrays, JSON equality, and the request limits."""

from __future__ import annotations

import pytest

from apps.iot import twin as rules


def merged(desired: dict, patch: dict, now: float = 2.0, meta: dict | None = None):
    meta = {} if meta is None else meta
    rules.merge(desired, meta, patch, now)
    return desired, meta


def test_merge_is_partial_and_stamps_each_written_leaf():
    desired, meta = merged({}, {"color": "RED", "cfg": {"fan": 1, "modes": [1, 2]}}, now=1.0)
    desired, meta = merged(desired, {"cfg": {"fan": 2}}, now=2.0, meta=meta)
    assert desired == {"color": "RED", "cfg": {"fan": 2, "modes": [1, 2]}}
    assert meta == {
        "color": {"timestamp": 1.0},
        "cfg": {"fan": {"timestamp": 2.0}, "modes": {"timestamp": 1.0}},
    }


def test_null_deletes_the_field_and_its_metadata_and_empty_parents():
    desired, meta = merged({}, {"engine": {"rpm": 10}, "color": "RED"}, now=1.0)
    desired, meta = merged(desired, {"engine": {"rpm": None}, "color": None}, meta=meta)
    assert desired == {} and meta == {}
    desired, meta = merged({"a": 1}, {"missing": None})
    assert desired == {"a": 1} and "missing" not in meta


def test_a_value_replacing_an_object_or_the_reverse_resets_metadata():
    desired, meta = merged({}, {"x": {"y": 1}}, now=1.0)
    desired, meta = merged(desired, {"x": 5}, now=2.0, meta=meta)
    assert desired == {"x": 5} and meta == {"x": {"timestamp": 2.0}}
    desired, meta = merged(desired, {"x": {"z": 1}}, now=3.0, meta=meta)
    assert desired == {"x": {"z": 1}} and meta == {"x": {"z": {"timestamp": 3.0}}}


def test_delta_keeps_nested_paths_and_compares_arrays_whole():
    desired = {"color": "RED", "cfg": {"fan": {"speed": 3, "on": True}, "list": [1, 2, 3]}}
    reported = {"color": "RED", "cfg": {"fan": {"speed": 2, "on": True}, "list": [1, 2]}}
    assert rules.delta(desired, reported) == {"cfg": {"fan": {"speed": 3}, "list": [1, 2, 3]}}
    assert rules.delta({"a": {"b": 1}}, {}) == {"a": {"b": 1}}  # missing: whole subtree
    assert rules.delta({"a": 1}, {"a": 1, "only_reported": 2}) == {}


def test_json_equality_tells_booleans_from_numbers():
    assert rules.delta({"on": True}, {"on": 1}) == {"on": True}
    assert rules.delta({"n": 1}, {"n": 1.0}) == {}
    assert rules.delta({"l": [True]}, {"l": [1]}) == {"l": [True]}
    assert rules.delta({"s": "1"}, {"s": 1}) == {"s": "1"}


def nested(levels: int) -> dict:
    value: object = 1
    for _ in range(levels):
        value = {"k": value}
    return value  # type: ignore[return-value]


def test_depth_six_is_accepted_and_seven_refused():
    assert rules.depth(nested(6)) == 6
    rules.parse_update({"state": {"desired": nested(6)}})
    with pytest.raises(rules.TwinError) as refused:
        rules.parse_update({"state": {"desired": nested(7)}})
    assert refused.value.status == 400
    with pytest.raises(rules.TwinError):  # arrays count as levels too
        rules.parse_update({"state": {"reported": {"a": [[[[[[1]]]]]]}}})
    assert rules.depth(nested(100_000)) == 100_000  # iterative: no RecursionError


@pytest.mark.parametrize(
    "body",
    [
        [],
        {},
        {"state": {}},
        {"state": {"desired": 1}},
        {"state": {"tags": {}}},
        {"state": {"desired": {}}, "version": "3"},
        {"state": {"desired": {}}, "version": True},
        {"state": {"desired": {}}, "client_token": 5},
        {"state": {"desired": {}}, "client_token": "x" * 65},
        {"state": {"desired": {}}, "client_token": "é" * 33},  # 66 bytes
        {"state": {"desired": {}}, "extra": 1},
        {"state": {"desired": {"x": float("nan")}}},
    ],
)
def test_malformed_updates_are_400(body):
    with pytest.raises(rules.TwinError) as refused:
        rules.parse_update(body)
    assert refused.value.status == 400 and refused.value.code == "bad_request"


def test_well_formed_update_and_null_sections():
    parsed = rules.parse_update(
        {"state": {"desired": None, "reported": {"a": 1}}, "version": 3, "client_token": "x" * 64}
    )
    assert parsed == {
        "state": {"desired": None, "reported": {"a": 1}},
        "version": 3,
        "client_token": "x" * 64,
        "token_field": "client_token",
    }


def test_document_size_counts_desired_and_reported():
    assert rules.document_size({}, {}) == len('{"desired":{},"reported":{}}')
    assert rules.document_size({"a": "x" * 9000}, {}) > rules.MAX_DOCUMENT_BYTES


def test_the_client_token_may_come_in_aws_spelling_and_says_which_was_used():
    ours = rules.parse_update({"state": {"desired": {"a": 1}}, "client_token": "t"})
    aws = rules.parse_update({"state": {"desired": {"a": 1}}, "clientToken": "t"})
    assert (ours["client_token"], ours["token_field"]) == ("t", "client_token")
    assert (aws["client_token"], aws["token_field"]) == ("t", "clientToken")
    with pytest.raises(rules.TwinError, match="not both"):
        rules.parse_update({"state": {"desired": {}}, "client_token": "a", "clientToken": "b"})
    with pytest.raises(rules.TwinError, match="clientToken is longer"):
        rules.parse_update({"state": {"desired": {}}, "clientToken": "x" * 65})
