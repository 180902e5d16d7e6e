import json
from collections import Counter

import pytest

from kcl_app import ledger
from kcl_app.handler import StreamRecord, process_batch
from tests.conftest import RECENTCHANGE
from tests.unit.fakes import fake_stores
from wikitide.errors import DependencyUnavailable

SHARD = "shardId-000000000000"


def _payloads() -> list[bytes]:
    path = RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson"
    return [line.encode() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _records(payloads: list[bytes], shard: str = SHARD, first: int = 1000) -> list[StreamRecord]:
    return [StreamRecord(p, shard, first + i, 1_630_070_400_000 + i) for i, p in enumerate(payloads)]


def test_a_duplicate_revision_counts_once() -> None:
    payload = _payloads()[0]
    stores, events, counters, mirror, _ = fake_stores()
    first = process_batch(_records([payload, payload]), stores)
    again = process_batch(_records([payload], first=2000), stores)
    assert (first.claimed, first.duplicates) == (1, 1)
    assert (again.claimed, again.duplicates) == (0, 1)
    assert counters.totals()["events"] == 1 == mirror.totals()["events"]
    assert len(events.items) == 1


def test_a_redelivered_batch_changes_nothing() -> None:
    records = _records(_payloads())
    stores, events, counters, mirror, _ = fake_stores()
    process_batch(records, stores)
    before = (dict(counters.cells), dict(mirror.states), dict(events.items))
    again = process_batch(records[100:900], stores)
    assert again.claimed == 800  # the records still hold their keys ...
    assert (dict(counters.cells), dict(mirror.states), dict(events.items)) == before  # ... and add nothing
    assert counters.totals()["events"] == 1950


def test_a_batch_that_failed_half_way_counts_each_record_once_on_redelivery() -> None:
    records = _records(_payloads()[:400])
    stores, _, counters, mirror, _ = fake_stores()
    counters.fail_after = 10
    with pytest.raises(DependencyUnavailable):
        process_batch(records, stores)
    process_batch(records, stores)
    totals = counters.totals()
    assert totals["events"] == 400 == mirror.totals()["events"]
    assert sum(mirror.pages.values()) == totals["edit"] + totals["new"]


def test_a_zombie_batch_after_the_new_owner_moved_on_adds_nothing() -> None:
    records = _records(_payloads()[:600])
    stores, events, counters, mirror, _ = fake_stores()
    process_batch(records[:300], stores)  # the new owner, from the checkpoint
    process_batch(records[300:], stores)
    process_batch(records[200:400], stores)  # the paused worker wakes up with its old batch
    assert counters.totals()["events"] == 600
    assert mirror.pages == Counter((e.minute, e.wiki, e.title) for e in events.page_edits())


def test_a_source_duplicate_on_another_shard_is_not_counted() -> None:
    payloads = _payloads()[:50]
    stores, _, counters, _, _ = fake_stores()
    process_batch(_records(payloads), stores)
    outcome = process_batch(_records(payloads[::2], shard="shardId-000000000003"), stores)
    assert (outcome.claimed, outcome.duplicates) == (0, 25)
    assert counters.totals()["events"] == 50


def test_poison_records_go_to_dead_letters_and_count_once() -> None:
    good = _payloads()[:3]
    stores, _, counters, mirror, letters = fake_stores()
    records = _records([b"{not json", good[0], b'{"type": "edit"}', good[1], good[2]])
    outcome = process_batch(records, stores)
    process_batch(records, stores)
    assert outcome.claimed == 3
    assert {p: (letter.reason, letter.record.data) for p, letter in letters.letters.items()} == {
        records[0].position: ("not_json", b"{not json"),
        records[2].position: ("missing_field", b'{"type": "edit"}'),
    }
    assert counters.totals(ledger.REJECTED) == {"not_json": 1, "missing_field": 1} == mirror.totals(ledger.REJECTED)


def test_canaries_are_dropped() -> None:
    canary = json.dumps({"meta": {"id": "c", "dt": "2021-08-27T13:20:00Z", "domain": "canary"},
                         "type": "edit", "wiki": "enwiki", "title": "X", "revision": {"new": 1}})
    stores, events, _, _, _ = fake_stores()
    outcome = process_batch(_records([canary.encode()]), stores)
    assert outcome.canaries == 1
    assert not events.items


def test_a_store_failure_propagates_and_counts_nothing() -> None:
    stores, events, counters, _, _ = fake_stores()
    events.fail_next = 1
    with pytest.raises(DependencyUnavailable):
        process_batch(_records(_payloads()[:10]), stores)
    assert not counters.cells
    process_batch(_records(_payloads()[:10]), stores)
    assert counters.totals()["events"] == 10


def test_bytes_bots_wikis_and_pages_add_up() -> None:
    stores, events, counters, _, _ = fake_stores()
    process_batch(_records(_payloads()), stores)
    totals = counters.totals()
    assert totals["bot_events"] + totals["human_events"] == 1950
    assert totals["bytes_added"] > totals["bytes_removed"] > 0
    per_wiki = sum((counters.totals(s) for s in {c.scope for c, _ in counters.cells if c.scope.startswith("w:")}),
                   start=type(totals)())
    assert per_wiki == totals
    edits = events.page_edits()
    assert len(edits) == totals["edit"] + totals["new"]
    assert len({(e.shard, e.sequence) for e in edits}) == len(edits)  # one edit per claiming record
    assert all(cell.scope in ("*", "rejected") or cell.scope.startswith("w:") for cell, _ in counters.cells)


def test_a_refused_or_failing_record_is_isolated_and_the_rest_stored_once() -> None:
    payloads = _payloads()[:64]
    records = _records(payloads)
    stores, events, counters, mirror, letters = fake_stores()
    keys_of = [_raw_key(json.loads(p)) for p in payloads]
    events.refused.add(keys_of[5])
    events.broken.add(keys_of[40])
    outcome = process_batch(records, stores)
    assert outcome.rejected == {"processing_error": 2}
    assert outcome.claimed + outcome.duplicates == 62
    assert set(letters.letters) == {records[5].position, records[40].position}
    assert counters.totals()["events"] == len(set(keys_of) - {keys_of[5], keys_of[40]}) == mirror.totals()["events"]
    assert counters.totals(ledger.REJECTED) == {"processing_error": 2}


def test_a_transient_failure_is_not_isolated_but_raised() -> None:
    stores, events, _, _, letters = fake_stores()
    events.fail_next = 1
    with pytest.raises(DependencyUnavailable):
        process_batch(_records(_payloads()[:10]), stores)
    assert not letters.letters


def _raw_key(event: dict) -> str:
    revision = event.get("revision") or {}
    if event["type"] in ("edit", "new") and revision.get("new") is not None:
        return f"{event['wiki']}#rev#{revision['new']}"
    return f"{event['wiki']}#rc#{event['id']}" if event.get("id") is not None else f"meta#{event['meta']['id']}"
