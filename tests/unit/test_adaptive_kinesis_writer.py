"""The local stack's Kinesis writer moves from PutRecords to PutRecord lanes when, and only when, PutRecords has
become the dearer call per entry (as kinesis-mock's does while a stream grows)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from producer.batcher import to_entry
from producer.kinesis_writer import AdaptiveKinesisWriter
from wikitide.errors import DependencyUnavailable, RequestRefused


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TimedWriter:
    """A writer port fake: every entry costs `per_entry()` seconds on the clock; records what it wrote."""

    def __init__(self, clock: Clock, per_entry: Any, max_call_entries: int = 500) -> None:
        self.clock, self.per_entry, self.written, self.closed = clock, per_entry, [], False
        self.max_call_entries = max_call_entries

    def put(self, entries: Sequence[Any]) -> None:
        self.clock.now += self.per_entry() * len(entries)
        self.written.extend(entries)

    def close(self) -> None:
        self.closed = True


def _entries(n: int, start: int) -> list[Any]:
    return [to_entry(f'{{"wiki": "enwiki", "title": "P{i}", "n": {i}}}', None) for i in range(start, start + n)]


def test_it_stays_on_putrecords_while_those_are_cheaper_and_moves_when_they_grow_dearer() -> None:
    clock = Clock()
    stored = [0]
    # PutRecords: 2 ms an entry plus 1 ms for every 1,000 records stored (kinesis-mock's growth); PutRecord: 12 ms.
    batch = TimedWriter(clock, lambda: 0.002 + stored[0] / 1000 * 1e-3)
    lanes = TimedWriter(clock, lambda: 0.012, max_call_entries=32)
    writer = AdaptiveKinesisWriter(batch, lanes, clock=clock)  # type: ignore[arg-type]
    assert writer.max_call_entries == 32  # the lanes' size on both paths: a failed PutRecords goes through them
    path = []
    for call in range(400):
        writer.put(_entries(50, call * 50))
        stored[0] += 50
        path.append(writer.current)
    assert path[0] == "records"
    switched = path.index("record")
    # PutRecords costs 12 ms an entry at 10,000 stored (call 200); the moving average follows within a few calls.
    assert 195 <= switched <= 215, switched
    assert set(path[switched:]) == {"record"}
    assert len(batch.written) + len(lanes.written) == 400 * 50  # every entry written once, by one of them
    assert lanes.written and batch.written
    writer.close()
    assert batch.closed and lanes.closed


def test_it_never_leaves_putrecords_when_those_stay_cheaper() -> None:
    clock = Clock()
    batch, lanes = TimedWriter(clock, lambda: 0.001), TimedWriter(clock, lambda: 0.010)
    writer = AdaptiveKinesisWriter(batch, lanes, clock=clock)  # type: ignore[arg-type]
    for call in range(300):
        writer.put(_entries(10, call * 10))
        assert writer.current == "records"
    # Only the probes went to PutRecord: the second call, then one call in PROBE_EVERY.
    assert len(lanes.written) == 10 * (1 + 300 // AdaptiveKinesisWriter.PROBE_EVERY)


class FailingWriter(TimedWriter):
    """PutRecords that outlasts its retries `failures` times (each failure costs `seconds`), then works."""

    def __init__(self, clock: Clock, failures: int, seconds: float, error: type[Exception] = DependencyUnavailable
                 ) -> None:
        super().__init__(clock, lambda: 0.001)
        self.failures, self.seconds, self.error = failures, seconds, error

    def put(self, entries: Sequence[Any]) -> None:
        if self.failures:
            self.failures -= 1
            self.clock.now += self.seconds
            raise self.error("PutRecords to s failed under 'producer PutRecords' retries: Read timeout")
        super().put(entries)


def test_a_putrecords_that_fails_under_its_retries_is_written_by_the_lanes_and_they_take_over() -> None:
    clock = Clock()
    batch, lanes = FailingWriter(clock, failures=1, seconds=30.0), TimedWriter(clock, lambda: 0.012)
    writer = AdaptiveKinesisWriter(batch, lanes, clock=clock)  # type: ignore[arg-type]
    first = _entries(500, 0)
    writer.put(first)  # no exception: the lanes wrote what PutRecords could not
    assert lanes.written == first and not batch.written
    assert writer.current == "record"  # 60 ms an entry charged to PutRecords against the lanes' 12 ms
    writer.put(_entries(10, 500))
    assert len(lanes.written) == 510


def test_a_restarted_writer_measures_the_lanes_on_its_second_call() -> None:
    clock = Clock()
    batch, lanes = TimedWriter(clock, lambda: 0.050), TimedWriter(clock, lambda: 0.012)  # a long stream already
    writer = AdaptiveKinesisWriter(batch, lanes, clock=clock)  # type: ignore[arg-type]
    writer.put(_entries(100, 0))
    assert writer.current == "records"  # nothing known of the lanes yet
    writer.put(_entries(100, 100))
    assert writer.current == "record" and len(lanes.written) == 100


def test_a_refused_putrecords_is_not_sent_again_by_the_lanes() -> None:
    clock = Clock()
    batch = FailingWriter(clock, failures=1, seconds=0.1, error=RequestRefused)
    lanes = TimedWriter(clock, lambda: 0.012)
    writer = AdaptiveKinesisWriter(batch, lanes, clock=clock)  # type: ignore[arg-type]
    try:
        writer.put(_entries(5, 0))
    except RequestRefused:
        pass
    else:
        raise AssertionError("a refused call must reach the caller")
    assert not lanes.written
