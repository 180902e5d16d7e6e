import json

import pytest

from kcl_app.handler import process_batch
from tests.conftest import RECENTCHANGE
from tests.unit.fakes import FakeCounterStore, FakeEventStore
from wikitide.errors import DependencyUnavailable


def _payloads() -> list[bytes]:
    path = RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson"
    return [line.encode() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_a_duplicate_revision_counts_once() -> None:
    payload = _payloads()[0]
    events, counters = FakeEventStore(), FakeCounterStore()
    first = process_batch([payload, payload], events, counters)
    again = process_batch([payload], events, counters)
    assert (first.stored, first.duplicates_in_batch, first.newly_counted) == (1, 1, 1)
    assert again.newly_counted == 0
    assert counters.totals["events"] == 1
    assert len(events.items) == 1


def test_a_redelivered_recording_changes_nothing() -> None:
    payloads = _payloads()
    events, counters = FakeEventStore(), FakeCounterStore()
    process_batch(payloads, events, counters)
    before = (dict(counters.totals), dict(counters.pages), dict(events.items))
    process_batch(payloads[100:900], events, counters)
    assert (dict(counters.totals), dict(counters.pages), dict(events.items)) == before
    assert counters.totals["events"] == 1950


def test_bad_records_are_counted_and_the_rest_is_kept() -> None:
    good = _payloads()[:3]
    events, counters = FakeEventStore(), FakeCounterStore()
    outcome = process_batch([b"{not json", good[0], b'{"type": "edit"}', good[1], good[2]], events, counters)
    assert outcome.stored == 3
    assert counters.rejected == {"not_json": 1, "missing_field": 1}


def test_canaries_are_dropped() -> None:
    canary = json.dumps({"meta": {"id": "c", "dt": "2024-01-01T00:00:00Z", "domain": "canary"},
                         "type": "edit", "wiki": "enwiki", "title": "X", "revision": {"new": 1}})
    events, counters = FakeEventStore(), FakeCounterStore()
    outcome = process_batch([canary.encode()], events, counters)
    assert outcome.canaries == 1
    assert not events.items


def test_a_store_failure_propagates_and_counts_nothing() -> None:
    events, counters = FakeEventStore(), FakeCounterStore()
    events.fail_next = 1
    with pytest.raises(DependencyUnavailable):
        process_batch(_payloads()[:10], events, counters)
    assert not counters.seen
    process_batch(_payloads()[:10], events, counters)
    assert counters.totals["events"] == 10


def test_bytes_and_bot_split() -> None:
    events, counters = FakeEventStore(), FakeCounterStore()
    process_batch(_payloads(), events, counters)
    assert counters.totals["bot_events"] + counters.totals["human_events"] == 1950
    assert counters.totals["bytes_added"] > counters.totals["bytes_removed"] > 0
