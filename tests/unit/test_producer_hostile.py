"""Frames a hostile or broken server may send: none stops the producer, each is sent, skipped or rejected, and
the position moves past every one of them."""

from __future__ import annotations

import json
import threading
import time

import pytest

from producer.batcher import MAX_DATA_BYTES, MAX_DEPTH, Passage, Rejected, parse_payload, shrink, to_entry
from producer.progress import MAX_PARTITIONS, Checkpoint, Mark, PartitionTracker, marks_of
from producer.service import Producer
from producer.sse_source import SourceEvent
from tests.unit.fakes import FakeKinesis
from wikitide.envelope import event_of


def _edit(n: int, **extra: object) -> dict:
    return {"meta": {"id": f"m{n}", "dt": "2024-01-01T00:00:00Z", "domain": "en.wikipedia.org",
                     "topic": "eqiad.mediawiki.recentchange", "partition": 0, "offset": n},
            "type": "edit", "wiki": "enwiki", "title": f"Page {n}", "revision": {"old": 1, "new": n + 2}, **extra}


def _frame(n: int, **extra: object) -> SourceEvent:
    return SourceEvent(data=json.dumps(_edit(n, **extra)).encode(), id=f"id-{n}")


def _run(events: list[SourceEvent], checkpoint: Checkpoint | None = None) -> tuple[Producer, FakeKinesis, list]:
    kinesis, saved = FakeKinesis(), []
    producer = Producer(iter(events), kinesis, linger=0.01, checkpoint=checkpoint, on_flushed=saved.append)
    producer.run(threading.Event())
    return producer, kinesis, saved


def test_an_event_whose_bulk_is_in_tags_is_cut_to_fit_keeping_what_counting_needs() -> None:
    event = _edit(1, tags=["t" * 1000] * 1200, comment="a comment", parsedcomment="p" * 100)
    event["meta"]["uri"] = "https://en.wikipedia.org/wiki/Page_1"
    entry = to_entry(json.dumps(event), "id-1")
    stored = json.loads(event_of(entry.data))
    assert len(entry.data) <= MAX_DATA_BYTES
    assert stored["wikitide_truncated"] == ["tags"] and entry.truncated == ("tags",)
    assert isinstance(stored["tags"], str) and len(stored["tags"]) <= 2048
    assert {k: v for k, v in stored.items() if k not in ("tags", "wikitide_truncated")} == {
        k: v for k, v in event.items() if k != "tags"}


def test_fields_are_cut_largest_first_and_only_as_many_as_needed() -> None:
    event = _edit(1, comment="c" * 700_000, log_params={"x": "l" * 400_000}, parsedcomment="p" * 50_000)
    entry = to_entry(json.dumps(event), "id-1")
    stored = json.loads(event_of(entry.data))
    assert stored["wikitide_truncated"] == ["comment"]
    assert stored["log_params"] == {"x": "l" * 400_000}
    assert stored["comment"] == "c" * 2048


def test_an_event_too_large_in_the_fields_counting_needs_is_rejected() -> None:
    with pytest.raises(Rejected, match="oversized"):
        shrink(_edit(1, title="T" * 1_100_000))
    with pytest.raises(Rejected, match="oversized"):  # many fields, none worth cutting
        shrink(_edit(1, **{f"f{i}": "v" * 1000 for i in range(1500)}))


@pytest.mark.parametrize(("payload", "reason"), [
    (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
    (b'{"a": ' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}", "too_deep"),
    (b'{"title": "\xff\xfe"}', "invalid_utf8"),
    (b'{"a": NaN}', "not_json"),
    (b'{"a": "\\ud800"}', "not_json"),
    (b'{"a": 1e999}', "not_json"),
    (b"[1, 2]", "not_an_object"),
    (b"", "not_json"),
])
def test_payloads_that_cannot_be_decoded_within_limits_are_rejected_by_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as caught:
        parse_payload(payload)
    assert caught.value.reason == reason


def test_nesting_up_to_the_limit_is_accepted() -> None:
    nested = b'{"log_params": ' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}"
    assert "log_params" in parse_payload(nested)


def test_rejected_and_skipped_frames_move_the_saved_position_and_are_counted_in_it() -> None:
    events = [_frame(1), SourceEvent(b"[" * 100_000, "id-deep"), _frame(2, tags=["x" * 1000] * 1200),
              SourceEvent(b'{"meta": {"domain": "canary"}}', "id-canary"), SourceEvent(b"{oops", "id-last")]
    producer, kinesis, saved = _run(events)
    assert [json.loads(event_of(r.data))["meta"]["id"] for r in kinesis.records] == ["m1", "m2"]
    assert producer.stats.rejected == {"too_deep": 1, "not_json": 1}
    assert producer.stats.skipped == {"canary": 1}
    assert producer.stats.truncated == 1
    last = saved[-1]
    assert last.last_event_id == "id-last"  # the last frame read was rejected: a restart resumes after it
    assert last.rejected == {"too_deep": 1, "not_json": 1} and last.truncated == 1

    # Cumulative over restarts, like gaps.
    again, _, saved_again = _run([SourceEvent(b"42", "id-after")], checkpoint=last)
    assert saved_again[-1].rejected == {"too_deep": 1, "not_json": 1, "not_an_object": 1}
    assert saved_again[-1].last_event_id == "id-after"
    assert again.stats.rejected == {"not_an_object": 1}


def test_the_position_never_passes_an_unwritten_entry_even_behind_rejected_frames() -> None:
    gate, stop = threading.Event(), threading.Event()
    saved: list[Checkpoint] = []

    class HeldKinesis(FakeKinesis):
        def put(self, entries):
            gate.wait(10)
            super().put(entries)

    producer = Producer(iter([_frame(1), SourceEvent(b"{bad", "id-bad")]), HeldKinesis(), linger=0.01,
                        on_flushed=saved.append)
    runner = threading.Thread(target=producer.run, args=(stop,))
    runner.start()
    while producer.stats.read < 2 and runner.is_alive():
        threading.Event().wait(0.01)
    threading.Event().wait(0.2)
    assert saved == [] and producer.checkpoint.last_event_id is None  # id-1 is not in Kinesis yet
    gate.set()
    runner.join(timeout=10)
    assert [c.last_event_id for c in saved][-1] == "id-bad"


def test_a_rejected_frame_after_everything_is_written_is_saved_without_waiting_for_another_event() -> None:
    stop, more = threading.Event(), threading.Event()
    saved: list[Checkpoint] = []

    def source():
        yield _frame(1)
        yield SourceEvent(b"{bad", "id-bad")
        more.wait(10)  # then the stream goes quiet

    producer = Producer(source(), FakeKinesis(), linger=0.01, on_flushed=saved.append)
    runner = threading.Thread(target=producer.run, args=(stop,))
    runner.start()
    deadline = time.monotonic() + 30  # a bound for a loaded machine; it takes about one linger
    while not (saved and saved[-1].last_event_id == "id-bad") and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    stop.set()
    more.set()
    runner.join(timeout=10)
    assert saved[-1].last_event_id == "id-bad" and saved[-1].rejected == {"not_json": 1}


def test_the_saved_partitions_stay_bounded_whatever_topics_a_server_invents() -> None:
    events = [SourceEvent(json.dumps({**_edit(n), "meta": {**_edit(n)["meta"], "topic": f"invented-{n}"}}).encode(),
                          f"id-{n}") for n in range(500)]
    _, _, saved = _run(events)
    partitions = saved[-1].partitions
    assert len(partitions) == MAX_PARTITIONS
    assert ("invented-499", 0) in partitions  # the most recently moved are kept
    assert len(saved[-1].partitions_json()) < 10_000


def test_marks_refuse_values_no_kafka_position_can_have() -> None:
    def meta(**fields: object) -> dict:
        return {"meta": {"topic": "t", "partition": 0, "offset": 5, "dt": "2024-01-01T00:00:00Z", **fields}}

    assert marks_of(meta(), None) == (Mark("t", 0, 5, "2024-01-01T00:00:00Z"),)
    assert marks_of(meta(offset=2**63), None) == ()
    assert marks_of(meta(partition=True), None) == ()
    assert marks_of(meta(topic="t" * 300), None) == ()
    assert marks_of(meta(dt="x" * 1000), None) == (Mark("t", 0, 5, None),)
    assert marks_of(None, "[" * 600) == ()
    assert marks_of(None, '[{"topic": "a", "partition": 0, "offset": 1}, 7, {"topic": "b"}]') == (Mark("a", 0, 1),)


def test_the_tracker_forgets_the_least_recently_moved_partition_first() -> None:
    tracker = PartitionTracker({("kept", 0): Mark("kept", 0, 1)})
    for n in range(MAX_PARTITIONS * 2):
        tracker.observe((Mark(f"t{n}", 0, 1),))
        tracker.observe((Mark("kept", 0, n + 2),))
    assert len(tracker.positions) == MAX_PARTITIONS
    assert ("kept", 0) in tracker.positions


def test_filters_never_raise_on_values_of_the_wrong_type() -> None:
    from producer.filters import ChangeFilter

    keep = ChangeFilter(wikis=frozenset({"enwiki"}), types=frozenset({"edit"}), namespaces=frozenset({0}))
    assert not keep.keeps({"wiki": ["enwiki"], "type": {"a": 1}, "namespace": [0]})
    assert not keep.keeps({"wiki": "enwiki", "type": "edit", "namespace": False})
    assert keep.keeps({"wiki": "enwiki", "type": "edit", "namespace": 0})


def test_a_passage_counts_as_nothing_sent() -> None:
    assert Passage("x").truncated == () and Passage("x", rejected="not_json").rejected == "not_json"
