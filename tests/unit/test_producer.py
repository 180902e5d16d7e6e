import json
import threading

import pytest

from producer.batcher import (
    MAX_BATCH_RECORDS,
    MAX_RECORD_BYTES,
    Batch,
    Entry,
    Rejected,
    Skipped,
    partition_key_for,
    split_rounds,
    to_entry,
)
from producer.filters import ChangeFilter
from producer.service import Producer
from producer.sse_source import SourceEvent
from tests.unit.fakes import FakeKinesis
from wikitide.envelope import event_of
from wikitide.errors import DependencyUnavailable


def _event(n: int, title: str = "Page") -> SourceEvent:
    data = {"meta": {"id": f"m{n}", "dt": "2024-01-01T00:00:00Z", "domain": "en.wikipedia.org"},
            "type": "edit", "wiki": "enwiki", "title": title, "revision": {"new": n}}
    return SourceEvent(data=json.dumps(data).encode(), id=f"id-{n}")


def test_the_partition_key_is_the_page() -> None:
    assert partition_key_for({"wiki": "enwiki", "title": "Foo"}) == "enwiki\tFoo"
    assert partition_key_for({"meta": {"id": "abc"}}) == "abc"
    long = partition_key_for({"wiki": "enwiki", "title": "x" * 400})
    assert long.startswith("sha1:") and len(long) <= 256


def test_canaries_are_skipped_and_garbage_is_rejected() -> None:
    canary = json.dumps({"meta": {"domain": "canary"}})
    with pytest.raises(Skipped):
        to_entry(canary, None)
    with pytest.raises(Rejected):
        to_entry("{oops", None)
    with pytest.raises(Rejected):
        to_entry('"a string"', None)


def test_a_batch_stops_at_the_putrecords_count_limit() -> None:
    batch = Batch()
    entry = Entry(data=b"x", partition_key="k")
    for _ in range(MAX_BATCH_RECORDS):
        assert batch.fits(entry)
        batch.add(entry)
    assert not batch.fits(entry)


def test_every_event_is_written_in_source_order() -> None:
    source = [_event(n) for n in range(1200)]
    kinesis = FakeKinesis()
    stats = Producer(iter(source), kinesis, linger=0.01).run(threading.Event())
    assert [json.loads(event_of(e.data))["revision"]["new"] for e in kinesis.records] == list(range(1200))
    assert stats.written == 1200
    assert stats.batches >= 3
    assert stats.last_id == "id-1199"


class ShortCallKinesis(FakeKinesis):
    """A writer of short calls, as the PutRecord lanes are."""

    max_call_entries = 32

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def put(self, entries):
        self.calls.append(len(entries))
        super().put(entries)


def test_a_writer_of_short_calls_gets_short_calls_and_a_position_saved_after_each() -> None:
    source = [_event(n, title=f"P{n}") for n in range(1000)]
    kinesis = ShortCallKinesis()
    saved: list[str | None] = []
    stats = Producer(iter(source), kinesis, linger=0.01,
                     on_flushed=lambda checkpoint: saved.append(checkpoint.last_event_id)).run(threading.Event())
    assert stats.written == 1000 and max(kinesis.calls) == 32
    assert len(saved) >= 1000 // 32  # the durable position moved with every call, not every 500 entries
    assert saved[-1] == "id-999"


def test_bad_frames_are_counted_and_skipped() -> None:
    source = [_event(1), SourceEvent(data=b"not json", id="x"), _event(2)]
    kinesis = FakeKinesis()
    stats = Producer(iter(source), kinesis, linger=0.01).run(threading.Event())
    assert len(kinesis.records) == 2
    assert stats.rejected == {"not_json": 1}


def test_a_writer_failure_stops_the_producer_loudly() -> None:
    with pytest.raises(DependencyUnavailable):
        Producer(iter([_event(1)]), FakeKinesis(failures=1), linger=0.01).run(threading.Event())


def test_stop_flushes_what_was_read_even_when_the_source_is_quiet() -> None:
    gate = threading.Event()
    stop = threading.Event()

    def quiet_source():
        yield _event(1)
        yield _event(2)
        gate.wait(5)  # a stream with nothing more to say

    kinesis = FakeKinesis()
    producer = Producer(quiet_source(), kinesis, linger=30)
    runner = threading.Thread(target=producer.run, args=(stop,))
    runner.start()
    while producer.stats.read < 2 and runner.is_alive():
        threading.Event().wait(0.01)
    stop.set()
    runner.join(timeout=5)
    gate.set()
    assert not runner.is_alive()
    assert len(kinesis.records) == 2


def test_an_oversized_event_is_cut_and_flagged_not_dropped() -> None:
    event = {"meta": {"id": "big", "dt": "2024-01-01T00:00:00Z"}, "type": "log", "wiki": "enwiki", "title": "T",
             "log_params": {"blob": "x" * 2_000_000}, "comment": "keep me"}
    entry = to_entry(json.dumps(event), "id-big")
    assert len(entry.data) + len(entry.partition_key) <= MAX_RECORD_BYTES
    stored = json.loads(event_of(entry.data))
    assert stored["wikitide_truncated"] == ["log_params"]
    assert stored["comment"] == "keep me"
    assert stored["meta"]["id"] == "big"


def test_rounds_hold_one_entry_per_page_in_arrival_order() -> None:
    entries = [Entry(data=str(n).encode(), partition_key=page) for n, page in enumerate("AABACAB")]
    rounds = split_rounds(entries)
    assert [[e.data.decode() for e in r] for r in rounds] == [["0", "2", "4"], ["1", "6"], ["3"], ["5"]]
    for calls in rounds:
        assert len({e.partition_key for e in calls}) == len(calls)


def test_filters_keep_only_the_asked_for_changes() -> None:
    keep = ChangeFilter(wikis=frozenset({"enwiki"}), bots=False)
    human_en = json.dumps({"wiki": "enwiki", "title": "A", "bot": False})
    with pytest.raises(Skipped):
        to_entry(json.dumps({"wiki": "enwiki", "title": "A", "bot": True}), None, keep)
    with pytest.raises(Skipped):
        to_entry(json.dumps({"wiki": "dewiki", "title": "A", "bot": False}), None, keep)
    assert to_entry(human_en, None, keep).partition_key == "enwiki\tA"
    assert ChangeFilter(namespaces=frozenset({0})).keeps({"namespace": 0})
    assert not ChangeFilter(types=frozenset({"edit"})).keeps({"type": "log"})


def test_each_flush_reports_the_position_it_made_durable() -> None:
    positions: list[str | None] = []
    Producer(
        iter([_event(n) for n in range(5)]), FakeKinesis(), linger=0.01,
        on_flushed=lambda checkpoint: positions.append(checkpoint.last_event_id),
    ).run(threading.Event())
    assert positions and positions[-1] == "id-4"


def test_since_accepts_durations_and_iso_times() -> None:
    from datetime import UTC, datetime, timedelta

    from producer.since import parse_since
    from wikitide.errors import ConfigError

    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("2d", now) == now - timedelta(days=2)
    assert parse_since("2026-11-27T10:00:00Z", now) == datetime(2026, 11, 27, 10, tzinfo=UTC)
    with pytest.raises(ConfigError):
        parse_since("last tuesday", now)


def test_a_since_older_than_the_retention_is_reported_as_a_gap() -> None:
    from datetime import UTC, datetime, timedelta

    from producer.since import cold_start_gap

    since = datetime(2026, 11, 20, tzinfo=UTC)
    later = json.dumps({"meta": {"dt": "2026-11-27T00:00:00Z"}})
    assert cold_start_gap(since, later) == timedelta(days=7)
    assert cold_start_gap(since, json.dumps({"meta": {"dt": "2026-11-20T00:01:00Z"}})) is None


def test_reconnect_delays_grow_are_capped_and_respect_the_server() -> None:
    from producer.sse_source import ReconnectPolicy

    policy = ReconnectPolicy(base=0.5, max_delay=30)
    assert all(policy.delay(n, None) <= 30 for n in range(1, 50))
    assert policy.delay(1, 10.0) == 10.0
    assert policy.delay(1, 3600.0) == 30
    assert policy.delay(20, None) >= 15


def test_a_slow_kinesis_pauses_the_reader_instead_of_buffering_without_bound() -> None:
    read = {"count": 0}
    stop = threading.Event()

    def endless():
        n = 0
        while True:
            read["count"] += 1
            n += 1
            yield _event(n, title=f"P{n}")

    class SlowKinesis(FakeKinesis):
        def put(self, entries):
            threading.Event().wait(0.05)
            super().put(entries)

    kinesis = SlowKinesis()
    producer = Producer(endless(), kinesis, linger=0.01, max_backlog=100)
    runner = threading.Thread(target=producer.run, args=(stop,))
    runner.start()
    threading.Event().wait(0.5)
    stop.set()
    runner.join(timeout=5)
    # The reader is at most the backlog (and the one event it waits to queue) ahead of what Kinesis accepted.
    assert read["count"] - len(kinesis.records) <= 100 + 1
    assert len(kinesis.records) > 0


def test_every_call_holds_one_entry_per_page_and_pages_keep_their_order() -> None:
    from producer.kinesis_writer import KinesisWriter

    class RecordingClient:
        """A stand-in for boto3's Kinesis client that accepts every entry and remembers each call."""

        def __init__(self) -> None:
            self.calls: list[list[dict]] = []

        def put_records(self, StreamName: str, Records: list[dict]) -> dict:  # noqa: N803 - boto3's names
            self.calls.append(Records)
            return {"FailedRecordCount": 0,
                    "Records": [{"SequenceNumber": "1", "ShardId": "shardId-0"} for _ in Records]}

    client = RecordingClient()
    source = [_event(n, title=f"P{n % 7}") for n in range(300)]
    Producer(iter(source), KinesisWriter(client, "stream"), linger=0.01).run(threading.Event())
    for call in client.calls:
        assert len({r["PartitionKey"] for r in call}) == len(call)
    written = [json.loads(event_of(r["Data"])) for call in client.calls for r in call]
    for page in {e["title"] for e in written}:
        revisions = [e["revision"]["new"] for e in written if e["title"] == page]
        assert revisions == sorted(revisions)
    assert len(written) == 300


def test_the_backlog_is_bounded_in_bytes_as_well_as_in_entries() -> None:
    read = {"count": 0}
    stop = threading.Event()
    padding = "x" * 100_000

    def large_events():
        n = 0
        while True:
            read["count"] += 1
            n += 1
            yield SourceEvent(data=json.dumps({"meta": {"id": f"m{n}"}, "wiki": "enwiki", "title": f"P{n}",
                                               "comment": padding}).encode(), id=f"id-{n}")

    class StuckKinesis(FakeKinesis):
        def put(self, entries):
            stop.wait(5)  # Kinesis is down until the test stops the producer
            super().put(entries)

    kinesis = StuckKinesis()
    producer = Producer(large_events(), kinesis, linger=0.01, max_backlog=5000, max_backlog_bytes=1_000_000)
    runner = threading.Thread(target=producer.run, args=(stop,))
    runner.start()
    while read["count"] < 10 and runner.is_alive():
        threading.Event().wait(0.01)
    threading.Event().wait(0.3)
    held = read["count"]
    stop.set()
    runner.join(timeout=10)
    assert not runner.is_alive()
    # About 100 kB each: at most 10 fit the 1 MB budget, plus the one the reader waits to queue.
    assert held <= 11
    # An event larger than the whole budget still goes through when nothing else is held.
    big = SourceEvent(data=json.dumps({"meta": {"id": "big"}, "wiki": "enwiki", "title": "B",
                                       "comment": padding}).encode(), id="big")
    tiny = FakeKinesis()
    Producer(iter([big]), tiny, linger=0.01, max_backlog_bytes=1000).run(threading.Event())
    assert len(tiny.records) == 1
