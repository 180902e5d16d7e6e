"""Where the producer is in the stream, per topic/partition, and the gaps no reconnect could cover. Pure.

Every EventStreams event carries its own Kafka coordinates in `meta.topic`, `meta.partition` and `meta.offset`.
In the raw capture `../shared/data/recentchange/sse/kirajano_recentchange_2021-08-27.sse` they are contiguous
(1,949 steps of exactly +1 in 1,950 events), so an offset that jumps by more than one means events the stream
never delivered. The SSE `id:` list names the same topics and partitions but, on today's service, holds a
`timestamp` for the partition being read and `offset: -1` for the others; its offsets are used only for
payloads without `meta` coordinates (bare recordings replayed with `replay_id`).

A gap is reported wherever it shows: after a reconnect, after a resume from the saved position, or inside one
connection (the service restarting from its oldest retained event does that). Repeats (offsets at or below
the highest seen, as a timestamp resume gives) are not gaps.

What is kept stays bounded whatever a server sends: at most `MAX_PARTITIONS` partitions (the least recently
moved are forgotten first; EventStreams has two), topics of at most `MAX_TOPIC_CHARS`, Kafka's int32 partitions
and int64 offsets, and a `dt` only when it is short enough to be a time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import msgspec

PartitionKey = tuple[str, int]
MAX_PARTITIONS = 64
MAX_TOPIC_CHARS = 255  # Kafka's own limit is 249
MAX_DT_CHARS = 40  # `2021-08-27T10:00:00.123456+00:00` is 32
_MAX_PARTITION = 2**31 - 1
_MAX_OFFSET = 2**63 - 1


class Mark(NamedTuple):
    """One event's position: its topic, partition and offset, with its `meta.dt` as received (or None).
    A named tuple: one is made per event, on the reader's hot path."""

    topic: str
    partition: int
    offset: int
    dt: str | None = None

    @property
    def key(self) -> PartitionKey:
        return self.topic, self.partition


@dataclass(frozen=True, slots=True)
class Gap:
    """Offsets `last.offset + 1` to `next.offset - 1` of one partition were never received."""

    last: Mark
    next: Mark
    after: str  # "reconnect", "resume" (the first connection after a restart) or "stream" (mid-connection)

    @property
    def missed(self) -> int:
        return self.next.offset - self.last.offset - 1

    def describe(self) -> str:
        return (f"{self.missed} offsets of {self.last.topic}/{self.last.partition} missing after {self.after}: "
                f"offsets {self.last.offset + 1}..{self.next.offset - 1}, "
                f"between events at {self.last.dt or '?'} and {self.next.dt or '?'}")

    def to_json(self) -> dict[str, Any]:
        return {"topic": self.last.topic, "partition": self.last.partition, "after": self.after,
                "missed": self.missed, "last_offset": self.last.offset, "next_offset": self.next.offset,
                "last_dt": self.last.dt, "next_dt": self.next.dt}

    @staticmethod
    def from_json(doc: Mapping[str, Any]) -> Gap:
        topic, partition = doc["topic"], doc["partition"]
        return Gap(last=Mark(topic, partition, doc["last_offset"], doc.get("last_dt")),
                   next=Mark(topic, partition, doc["next_offset"], doc.get("next_dt")), after=doc["after"])


def marks_of(raw: Mapping[str, Any] | None, sse_id: str | None) -> tuple[Mark, ...]:
    """The positions one event proves: its `meta` coordinates, else the offsets of its SSE `id:` list."""
    meta = raw.get("meta") if raw is not None else None
    dt = meta.get("dt") if isinstance(meta, dict) else None
    if type(dt) is not str or len(dt) > MAX_DT_CHARS:
        dt = None
    if isinstance(meta, dict):
        mark = _mark(meta.get("topic"), meta.get("partition"), meta.get("offset"), dt)
        if mark is not None:
            return (mark,)
    if not sse_id or not sse_id.startswith("["):
        return ()
    try:
        positions = msgspec.json.decode(sse_id)
    except (msgspec.DecodeError, RecursionError):
        return ()
    if type(positions) is not list:
        return ()
    marks = (_mark(p.get("topic"), p.get("partition"), p.get("offset"), dt) for p in positions if type(p) is dict)
    return tuple(mark for mark in marks if mark is not None)


def _mark(topic: object, partition: object, offset: object, dt: str | None) -> Mark | None:
    # `type(...) is`: a bool is not an offset; this runs once per event on the reader's hot path.
    if (type(topic) is str and type(partition) is int and type(offset) is int and len(topic) <= MAX_TOPIC_CHARS
            and 0 <= partition <= _MAX_PARTITION and 0 <= offset <= _MAX_OFFSET):
        return Mark(topic, partition, offset, dt)
    return None


def remember(positions: dict[PartitionKey, Mark], mark: Mark) -> None:
    """Record `mark` as its partition's latest; past `MAX_PARTITIONS`, forget the least recently moved."""
    key = mark.key
    if key in positions:
        del positions[key]  # re-inserted below: dict order is the order of the last move
    elif len(positions) >= MAX_PARTITIONS:
        del positions[next(iter(positions))]
    positions[key] = mark


class PartitionTracker:
    """The highest offset read per topic/partition, seeded from the saved checkpoint on a resume.

    `observe` returns the gaps an event reveals, if any. `connection` numbers the SSE connections of this
    process (0, 1, ...): a partition last seen on an earlier connection (or in the checkpoint) tells a gap
    after a reconnect (or a resume) from a jump inside one connection.
    """

    def __init__(self, known: Mapping[PartitionKey, Mark] | None = None) -> None:
        self._last: dict[PartitionKey, Mark] = {}
        for mark in (known or {}).values():
            remember(self._last, mark)
        self._seen_on: dict[PartitionKey, int | None] = dict.fromkeys(self._last)  # None: from the checkpoint

    def observe(self, marks: tuple[Mark, ...], connection: int = 0) -> tuple[Gap, ...]:
        """The gaps one event's positions reveal (usually none)."""
        gaps: tuple[Gap, ...] = ()
        for mark in marks:
            key = mark[:2]
            last = self._last.get(key)
            if last is not None and mark.offset <= last.offset:
                continue
            seen_on = self._seen_on.pop(key, None)
            remember(self._last, mark)
            self._seen_on[key] = connection
            if len(self._seen_on) > len(self._last):
                self._seen_on = {k: self._seen_on.get(k) for k in self._last}
            if last is not None and mark.offset > last.offset + 1:
                after = "stream" if seen_on == connection else "reconnect" if seen_on is not None else "resume"
                gaps += (Gap(last=last, next=mark, after=after),)
        return gaps

    @property
    def positions(self) -> dict[PartitionKey, Mark]:
        return dict(self._last)


class Written(Protocol):
    """A frame now behind the durable position, as the checkpoint sees it: an entry in Kinesis, or a frame
    that was skipped or rejected (`rejected` names why) once every earlier entry is in Kinesis."""

    @property
    def sse_id(self) -> str | None: ...
    @property
    def marks(self) -> tuple[Mark, ...]: ...
    @property
    def gaps(self) -> tuple[Gap, ...]: ...
    @property
    def rejected(self) -> str | None: ...
    @property
    def truncated(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Checkpoint:
    """What is durably in Kinesis: the SSE id to resume after, the partition offsets up to that point, and
    what was reported so far, cumulative over restarts: gaps (`gaps` counts them, `missed` adds up their
    offsets), frames rejected (by reason) and events cut to fit a record (`truncated`)."""

    last_event_id: str | None = None
    partitions: Mapping[PartitionKey, Mark] = field(default_factory=dict)
    gaps: int = 0
    missed: int = 0
    last_gap: Gap | None = None
    rejected: Mapping[str, int] = field(default_factory=dict)
    truncated: int = 0

    def advanced(self, written: Iterable[Written]) -> Checkpoint:
        """The checkpoint once `written` (frames in arrival order, all earlier ones already counted) is behind
        the durable position."""
        last_id, partitions = self.last_event_id, dict(self.partitions)
        gaps, missed, last_gap = self.gaps, self.missed, self.last_gap
        rejected: Counter[str] | None = None
        truncated = self.truncated
        for entry in written:
            last_id = entry.sse_id or last_id
            for mark in entry.marks:
                known = partitions.get(mark.key)
                if known is None or mark.offset > known.offset:
                    remember(partitions, mark)
            for gap in entry.gaps:
                gaps, missed, last_gap = gaps + 1, missed + gap.missed, gap
            if entry.rejected is not None:
                rejected = rejected if rejected is not None else Counter(self.rejected)
                rejected[entry.rejected] += 1
            if entry.truncated:
                truncated += 1
        return Checkpoint(last_id, partitions, gaps, missed, last_gap,
                          self.rejected if rejected is None else dict(rejected), truncated)

    def partitions_json(self) -> str:
        return msgspec.json.encode([{"topic": m.topic, "partition": m.partition, "offset": m.offset, "dt": m.dt}
                                    for m in self.partitions.values()]).decode()

    @staticmethod
    def partitions_from_json(text: str) -> dict[PartitionKey, Mark]:
        positions: dict[PartitionKey, Mark] = {}
        for p in msgspec.json.decode(text):
            remember(positions, Mark(p["topic"], p["partition"], p["offset"], p.get("dt")))
        return positions
