import json
import threading

import pytest

from producer.batcher import MAX_BATCH_RECORDS, Batch, Entry, Rejected, partition_key_for, to_entry
from producer.service import Producer
from producer.sse_source import SourceEvent
from tests.unit.fakes import FakeKinesis
from wikitide.errors import DependencyUnavailable


def _event(n: int, title: str = "Page") -> SourceEvent:
    data = {"meta": {"id": f"m{n}", "dt": "2024-01-01T00:00:00Z", "domain": "en.wikipedia.org"},
            "type": "edit", "wiki": "enwiki", "title": title, "revision": {"new": n}}
    return SourceEvent(data=json.dumps(data), id=f"id-{n}")


def test_the_partition_key_is_the_page() -> None:
    assert partition_key_for({"wiki": "enwiki", "title": "Foo"}) == "enwiki\tFoo"
    assert partition_key_for({"meta": {"id": "abc"}}) == "abc"
    long = partition_key_for({"wiki": "enwiki", "title": "x" * 400})
    assert long.startswith("sha1:") and len(long) <= 256


def test_canaries_become_no_entry_and_garbage_is_rejected() -> None:
    canary = json.dumps({"meta": {"domain": "canary"}})
    assert to_entry(canary, None) is None
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
    assert [json.loads(e.data)["revision"]["new"] for e in kinesis.records] == list(range(1200))
    assert stats.written == 1200
    assert stats.batches >= 3
    assert stats.last_id == "id-1199"


def test_bad_frames_are_counted_and_skipped() -> None:
    source = [_event(1), SourceEvent(data="not json", id="x"), _event(2)]
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
