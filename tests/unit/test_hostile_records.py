"""Property-based: hostile records made from the real recordings go through parse -> enrich -> process_batch
with the fakes. No exception escapes, every record ends as exactly one of counted, duplicate, canary or dead
letter, the rejected ones with the reason their mutation calls for, and every item a store would write fits
DynamoDB's limits.

The expectations come from the mutation applied and from the raw events (`_key`), not from the parser."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kcl_app.dynamo_store import dead_letter_item, event_item
from kcl_app.handler import StreamRecord, process_batch
from tests.conftest import RECENTCHANGE
from tests.unit.fakes import fake_stores
from wikitide.events import REASONS

SHARD = "shardId-000000000007"
ITEM_LIMIT = 400 * 1024
KEY_LIMIT = 2048
EVENTS: list[dict[str, Any]] = [
    json.loads(line)
    for path in [
        RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson",
        RECENTCHANGE / "ndjson" / "wikistream_lakehouse_recentchanges_sample_2026-02-26.jsonl",
        RECENTCHANGE / "legacy_2018" / "editgroups_one_qs_batch.ndjson",
    ]
    for line in path.read_text(encoding="utf-8").splitlines()
    if line.strip()
]
INTEGER_FIELDS = [("id",), ("namespace",), ("length", "new"), ("length", "old"), ("revision", "new"),
                  ("revision", "old"), ("timestamp",)]
UNSIGNED_FIELDS = [("id",), ("length", "new"), ("revision", "new"), ("revision", "old")]
STRING_FIELDS = [("type",), ("wiki",), ("title",), ("user",), ("comment",), ("meta", "id"), ("meta", "dt"),
                 ("server_name",)]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                            HealthCheck.data_too_large])


def _key(event: dict[str, Any]) -> str:
    revision = event.get("revision") or {}
    if event["type"] in ("edit", "new") and revision.get("new") is not None:
        return f"{event['wiki']}#rev#{revision['new']}"
    return f"{event['wiki']}#rc#{event['id']}" if event.get("id") is not None else f"meta#{event['meta']['id']}"


def _arrival_ms(event: dict[str, Any]) -> int:
    dt = datetime.fromisoformat(event["meta"]["dt"].replace("Z", "+00:00"))
    return int(dt.timestamp() * 1000) + 2000


def _set(event: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(event))
    target = copy
    for name in path[:-1]:
        target = target.setdefault(name, {})
    target[path[-1]] = value
    return copy


def _has(event: dict[str, Any], path: tuple[str, ...]) -> bool:
    target: Any = event
    for name in path:
        if not isinstance(target, dict) or name not in target:
            return False
        target = target[name]
    return True


def _item_bytes(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (strings as UTF-8, numbers about their digits)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        (kind, content), = value.items()
        size += len(content.encode("utf-8")) if kind in ("S", "N") else 1
    return size


# Mutations: each returns the payload and the reason it must be rejected for (None: it must be accepted).
@st.composite
def type_swaps(draw: st.DrawFn, event: dict[str, Any]) -> tuple[bytes, str | None]:
    path = draw(st.sampled_from(INTEGER_FIELDS + STRING_FIELDS + [("bot",), ("minor",), ("length",)]))
    if path in INTEGER_FIELDS:
        value = draw(st.one_of(st.text(max_size=8), st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
                               st.lists(st.integers(), max_size=2)))
    elif path in STRING_FIELDS:
        value = draw(st.one_of(st.integers(), st.booleans(), st.lists(st.text(max_size=3), max_size=2)))
    else:
        value = draw(st.one_of(st.text(max_size=8), st.integers(), st.lists(st.integers(), max_size=2)))
    if value is None or (isinstance(value, dict)):
        return json.dumps(event).encode(), None
    return json.dumps(_set(event, path, value)).encode(), "wrong_type"


@st.composite
def numeric_strings(draw: st.DrawFn, event: dict[str, Any]) -> tuple[bytes, str | None]:
    path = draw(st.sampled_from(INTEGER_FIELDS))
    value = draw(st.one_of(st.sampled_from(["--5", "\u00b2", "abc", " 12", "1e3", "-1", "0x10", "--1"]),
                           st.integers().map(str)))
    return json.dumps(_set(event, path, value)).encode(), "wrong_type"


@st.composite
def huge_numbers(draw: st.DrawFn, event: dict[str, Any]) -> tuple[bytes, str | None]:
    path = draw(st.sampled_from(UNSIGNED_FIELDS))
    value = draw(st.one_of(st.integers(min_value=2**53, max_value=10**60), st.integers(max_value=-1)))
    return json.dumps(_set(event, path, value)).encode(), "out_of_range"


@st.composite
def deep_nesting(draw: st.DrawFn, event: dict[str, Any]) -> tuple[bytes, str | None]:
    depth = draw(st.one_of(st.integers(min_value=16, max_value=2_000), st.just(100_000)))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    where = draw(st.sampled_from(["log_params", "unknown_field", "comment"]))
    marker = json.dumps(_set(event, (where,), "@@NEST@@"))
    nested = opener * depth + ("1" if opener != "[" else "") + closer * depth
    # The event itself is one level: anything 16 deep inside a field makes 17 in all.
    return marker.replace('"@@NEST@@"', nested).encode(), "too_deep"


@st.composite
def long_titles(draw: st.DrawFn, event: dict[str, Any]) -> tuple[bytes, str | None]:
    title = draw(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=300))
    size = len(title.encode("utf-8"))
    return json.dumps(_set(event, ("title",), title)).encode(), "too_long" if size > 255 else None


@st.composite
def future_dates(draw: st.DrawFn, event: dict[str, Any]) -> tuple[bytes, str | None]:
    ahead = draw(st.integers(min_value=-86_400, max_value=10**9))
    dt = datetime.fromtimestamp(_arrival_ms(event) / 1000, UTC) + timedelta(seconds=ahead)
    changed = _set(event, ("meta", "dt"), dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    # The original arrival stays: the record reached Kinesis then, whatever it claims.
    changed["_arrival"] = _arrival_ms(event)
    expected = "future_dt" if dt.timestamp() * 1000 > _arrival_ms(event) + 600_000 else None
    return json.dumps(changed).encode(), expected


@st.composite
def invalid_utf8(draw: st.DrawFn, event: dict[str, Any]) -> tuple[bytes, str | None]:
    payload = json.dumps(_set(event, ("comment",), "@@"), ensure_ascii=False).encode()
    bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82"]))
    return payload.replace(b"@@", b"x" + bad + b"y"), "not_json"


@st.composite
def oversized_fields(draw: st.DrawFn, event: dict[str, Any]) -> tuple[bytes, str | None]:
    path = draw(st.sampled_from([("comment",), ("parsedcomment",), ("log_params",), ("tags",), ("user",)]))
    size = draw(st.one_of(st.integers(min_value=1_000, max_value=5_000), st.just(400_000)))
    value = draw(st.sampled_from(["x", "é", "\U0001f600"])) * size
    return json.dumps(_set(event, path, value), ensure_ascii=False).encode(), "too_long" if path == ("user",) else None


MUTATIONS = [type_swaps, numeric_strings, huge_numbers, deep_nesting, long_titles, future_dates, invalid_utf8,
             oversized_fields]


@st.composite
def hostile_records(draw: st.DrawFn) -> tuple[bytes, str | None, int]:
    event = draw(st.sampled_from(EVENTS))
    mutation = draw(st.sampled_from(MUTATIONS))
    payload, expected = draw(mutation(event))
    arrival = _arrival_ms(event)
    if b'"_arrival"' in payload:
        payload = json.dumps({k: v for k, v in json.loads(payload).items() if k != "_arrival"}).encode()
    return payload, expected, arrival


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[bytes, str | None, int]]:
    hostile = draw(st.lists(hostile_records(), min_size=1, max_size=6))
    good = [(json.dumps(e).encode(), None, _arrival_ms(e)) for e in draw(st.lists(st.sampled_from(EVENTS),
                                                                                    max_size=6))]
    mixed = draw(st.permutations(hostile + good))
    return list(mixed)


def _check_items(stores_events: Any, letters: Any, claimed: list) -> None:
    for item in claimed:
        built = event_item(item)
        assert _item_bytes(built) < ITEM_LIMIT
        assert len(built["pk"]["S"].encode()) < KEY_LIMIT
    for letter in letters.letters.values():
        built = dead_letter_item(letter)
        assert _item_bytes(built) < ITEM_LIMIT
        json.dumps(built).encode("utf-8")  # every string is valid UTF-8


@SETTINGS
@given(batches())
def test_hostile_batches_lose_nothing_and_every_record_ends_once(batch: list[tuple[bytes, str | None, int]]) -> None:
    records = [StreamRecord(payload, SHARD, 5000 + i, arrival) for i, (payload, _, arrival) in enumerate(batch)]
    stores, events, counters, mirror, letters = fake_stores()
    claimed: list = []
    original_claim = events.claim
    events.claim = lambda changes: claimed.extend(held := original_claim(changes)) or held  # type: ignore[method-assign]
    outcome = process_batch(records, stores)

    assert outcome.claimed + outcome.duplicates + outcome.canaries + sum(outcome.rejected.values()) == len(records)
    assert set(outcome.rejected) <= set(REASONS)
    assert sum(outcome.rejected.values()) == len(letters.letters)
    for record, (_, expected, _) in zip(records, batch, strict=True):
        letter = letters.letters.get(record.position)
        if expected is None:
            assert letter is None, (letter, record.data[:300])
            assert _key(json.loads(record.data)) in events.items
        else:
            assert letter is not None and letter.reason == expected, (expected, letter, record.data[:300])
    assert counters.totals()["events"] == outcome.claimed == mirror.totals()["events"]
    assert counters.totals("rejected") == outcome.rejected
    _check_items(events, letters, claimed)


@SETTINGS
@given(st.lists(hostile_records(), min_size=1, max_size=4))
def test_a_redelivered_hostile_batch_changes_nothing(batch: list[tuple[bytes, str | None, int]]) -> None:
    records = [StreamRecord(payload, SHARD, 9000 + i, arrival) for i, (payload, _, arrival) in enumerate(batch)]
    stores, events, counters, mirror, letters = fake_stores()
    process_batch(records, stores)
    before = (dict(counters.cells), dict(events.items), dict(letters.letters))
    process_batch(records, stores)
    assert (dict(counters.cells), dict(events.items), dict(letters.letters)) == before
