"""The local stack's Kinesis writer moves from PutRecords to PutRecord lanes when, and only when, PutRecords has
become the dearer call per entry (as kinesis-mock's does while a stream grows)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from producer.batcher import to_entry
from producer.kinesis_writer import AdaptiveKinesisWriter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TimedWriter:
    """A writer port fake: every entry costs `per_entry()` seconds on the clock; records what it wrote."""

    def __init__(self, clock: Clock, per_entry: Any) -> None:
        self.clock, self.per_entry, self.written, self.closed = clock, per_entry, [], False

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
    lanes = TimedWriter(clock, lambda: 0.012)
    writer = AdaptiveKinesisWriter(batch, lanes, clock=clock)  # type: ignore[arg-type]
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
    # Only the probes went to PutRecord: one call in PROBE_EVERY.
    assert len(lanes.written) == 10 * (300 // AdaptiveKinesisWriter.PROBE_EVERY)
