import json
from pathlib import Path

import pytest

from tests.conftest import RECENTCHANGE
from wikitide.errors import InvalidChange
from wikitide.events import parse_change, revision_key


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _edit(**overrides: object) -> dict:
    """An edit; an override of None removes the field."""
    event = {
        "meta": {"id": "uuid-1", "dt": "2021-08-27T13:20:17Z", "domain": "en.wikipedia.org"},
        "id": 42, "type": "edit", "wiki": "enwiki", "title": "Page", "namespace": 0,
        "user": "Alice", "bot": False, "length": {"old": 10, "new": 25}, "revision": {"old": 1, "new": 2},
    }
    event.update(overrides)
    return {key: value for key, value in event.items() if value is not None}


def test_every_recorded_current_event_parses() -> None:
    lines = _lines(RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson")
    changes = [parse_change(line) for line in lines]
    assert len(changes) == 1950
    assert {c.type_bucket for c in changes} == {"edit", "new", "log", "categorize", "other"}


def test_the_2018_format_parses() -> None:
    lines = _lines(RECENTCHANGE / "legacy_2018" / "editgroups_qs_batch_with_reverts.ndjson")
    changes = [parse_change(line) for line in lines]
    assert all(c.wiki == "wikidatawiki" for c in changes)
    assert changes[0].dt.tzinfo is not None


def test_edit_dedup_key_is_the_revision_within_its_wiki() -> None:
    a = parse_change(json.dumps(_edit()))
    b = parse_change(json.dumps(_edit(wiki="dewiki")))
    assert a.dedup_key == revision_key("enwiki", 2)
    assert a.dedup_key != b.dedup_key


def test_non_revision_events_use_the_recent_change_id_then_meta_id() -> None:
    log = parse_change(json.dumps(_edit(type="log", revision=None, length=None)))
    assert log.dedup_key == "enwiki#rc#42"
    no_id = _edit(type="log")
    del no_id["id"]
    assert parse_change(json.dumps(no_id)).dedup_key == "meta#uuid-1"


def test_byte_delta_counts_a_missing_old_length_as_zero() -> None:
    created = parse_change(json.dumps(_edit(type="new", length={"new": 300}, revision={"new": 9})))
    assert created.byte_delta == 300
    assert parse_change(json.dumps(_edit(length={"old": 50, "new": 20}))).byte_delta == -30
    assert parse_change(json.dumps(_edit(type="categorize"))).byte_delta is None


def test_unknown_types_count_as_other() -> None:
    assert parse_change(json.dumps(_edit(type="142", revision=None))).type_bucket == "other"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not_json"),
        (b"[1, 2]", "not_an_object"),
        (json.dumps({"type": "edit"}).encode(), "missing_field"),
        (json.dumps(_edit(meta={"id": "x", "dt": "yesterday"})).encode(), "bad_field"),
        (json.dumps(_edit(title=None)).encode(), "missing_field"),
        (json.dumps({**_edit(), "title": None}).encode(), "wrong_type"),
        (b"\xff\xfe", "not_json"),
    ],
)
def test_unusable_payloads_are_rejected_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidChange) as caught:
        parse_change(payload)
    assert caught.value.reason == reason


def test_canary_events_are_recognised() -> None:
    assert parse_change(json.dumps(_edit(meta={"id": "c", "dt": "2021-08-27T13:20:17Z", "domain": "canary"}))).is_canary


ARRIVAL_MS = 1_630_070_417_000  # 2021-08-27T13:20:17Z, the recorded events' own minute


def _bytes(event: dict) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize(
    ("event", "reason", "where"),
    [
        (_edit(revision={"new": "--5"}), "wrong_type", "$.revision.new"),
        (_edit(revision={"new": "abc"}), "wrong_type", "$.revision.new"),
        (_edit(revision={"new": "12"}), "wrong_type", "$.revision.new"),
        (_edit(namespace="\u00b2"), "wrong_type", "$.namespace"),
        (_edit(namespace="--1"), "wrong_type", "$.namespace"),
        (_edit(namespace=1.0), "wrong_type", "$.namespace"),
        (_edit(id=True), "wrong_type", "$.id"),
        (_edit(length={"old": 1, "new": [5]}), "wrong_type", "$.length.new"),
        (_edit(bot="false"), "wrong_type", "$.bot"),
        (_edit(wiki=7), "wrong_type", "$.wiki"),
        (_edit(revision=None, type="log", log_params=5), "wrong_type", "$.log_params"),
        (_edit(revision={"new": -5}), "out_of_range", "$.revision.new"),
        (_edit(id=2**53), "out_of_range", "$.id"),
        (_edit(length={"old": 10, "new": 10**40}), "out_of_range", "$.length.new"),
        (_edit(namespace=-(2**53)), "out_of_range", "$.namespace"),
        (_edit(title="é" * 128), "too_long", "title of 256 bytes"),
        (_edit(user="x" * 256), "too_long", "user of 256 bytes"),
        (_edit(wiki="w" * 256), "too_long", "$.wiki"),
        (_edit(wiki=""), "missing_field", "$.wiki"),
        (_edit(type=None), "missing_field", "`type`"),
        (_edit(meta={"dt": "2021-08-27T13:20:17Z"}), "missing_field", "`id`"),
        (_edit(meta={"id": "x", "dt": "1999-12-31T23:59:59Z"}), "out_of_range", "before 2001"),
        (_edit(meta={"id": "x", "dt": "2021-08-27T13:30:18Z"}), "future_dt", "601 s after arrival"),
        (_edit(meta={"id": "x", "dt": "2999-01-01T00:00:00Z"}), "future_dt", "2999-01-01"),
    ],
)
def test_hostile_fields_are_rejected_with_a_stable_reason(event: dict, reason: str, where: str) -> None:
    with pytest.raises(InvalidChange) as caught:
        parse_change(_bytes(event), ARRIVAL_MS)
    assert (caught.value.reason, where in caught.value.detail) == (reason, True), caught.value.detail


def test_a_change_ten_minutes_after_arrival_is_still_accepted() -> None:
    change = parse_change(_bytes(_edit(meta={"id": "x", "dt": "2021-08-27T13:30:17Z"})), ARRIVAL_MS)
    assert change.dt.minute == 30
    assert parse_change(_bytes(_edit(meta={"id": "x", "dt": "2999-01-01T00:00:00Z"}))).dt.year == 2999  # no arrival


def test_a_title_of_255_bytes_is_accepted() -> None:
    assert len(parse_change(_bytes(_edit(title="é" * 127 + "x")), ARRIVAL_MS).title.encode()) == 255


@pytest.mark.parametrize("depth", [17, 1000, 100_000])
def test_deep_nesting_is_rejected_without_recursion(depth: int) -> None:
    for nested in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth):
        event = _bytes(_edit(log_params={}, type="log")).replace(b'"log_params": {}', b'"log_params": ' + nested)
        for payload in (nested, event, event.replace(b'"log_params"', b'"unknown"')):
            with pytest.raises(InvalidChange) as caught:
                parse_change(payload, ARRIVAL_MS)
            assert caught.value.reason == "too_deep"


def test_nesting_up_to_the_limit_and_brackets_in_strings_are_fine() -> None:
    nested = [[[[[[[[[[[[[[1]]]]]]]]]]]]]]  # 14 deep: 16 with the event and log_params
    event = _edit(type="log", log_params={"x": nested}, comment="[[" * 40 + "]]" * 40 + '\\"{{{')
    assert parse_change(_bytes(event), ARRIVAL_MS).comment.startswith("[[[[")


def test_invalid_utf8_anywhere_is_not_json() -> None:
    good = _bytes(_edit(comment="caf\u00e9"))
    for bad in (good.replace("é".encode(), b"\xff"), good.replace(b'"Alice"', b'"\xed\xa0\x80"'),
                good[:-1] + b', "extra": "\xc3"}'):
        with pytest.raises(InvalidChange) as caught:
            parse_change(bad, ARRIVAL_MS)
        assert caught.value.reason == "not_json"


def test_unknown_fields_are_accepted_as_the_schema_allows() -> None:
    change = parse_change(_bytes(_edit(title_url="https://x", anything={"deep": [1, 2]})), ARRIVAL_MS)
    assert change.title == "Page"


def test_every_recording_parses_with_its_fields() -> None:
    for path in sorted((RECENTCHANGE / "ndjson").glob("*.ndjson")) + sorted((RECENTCHANGE / "legacy_2018").glob("*")):
        for line in _lines(path):
            raw, change = json.loads(line), parse_change(line.encode("utf-8"))
            assert (change.wiki, change.title, change.rc_id) == (raw["wiki"], raw["title"], raw.get("id"))
            assert change.rev_new == (raw.get("revision") or {}).get("new")
            assert change.namespace == raw["namespace"]
