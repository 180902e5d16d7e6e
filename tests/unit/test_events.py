import json
from pathlib import Path

import pytest

from tests.conftest import RECENTCHANGE
from wikitide.errors import InvalidChange
from wikitide.events import parse_change, revision_key


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _edit(**overrides: object) -> dict:
    event = {
        "meta": {"id": "uuid-1", "dt": "2021-08-27T13:20:17Z", "domain": "en.wikipedia.org"},
        "id": 42, "type": "edit", "wiki": "enwiki", "title": "Page", "namespace": 0,
        "user": "Alice", "bot": False, "length": {"old": 10, "new": 25}, "revision": {"old": 1, "new": 2},
    }
    event.update(overrides)
    return event


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
        (b"\xff\xfe", "not_json"),
    ],
)
def test_unusable_payloads_are_rejected_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidChange) as caught:
        parse_change(payload)
    assert caught.value.reason == reason


def test_canary_events_are_recognised() -> None:
    assert parse_change(json.dumps(_edit(meta={"id": "c", "dt": "2021-08-27T13:20:17Z", "domain": "canary"}))).is_canary
