"""The producer loop: an SSE reader thread feeds the writer, which plans PutRecords calls that keep page order.

Backpressure is a budget of entries and bytes read but not yet durably in Kinesis: when Kinesis is slow the
reader waits (and the server holds the stream for us), so memory stays bounded at any backlog. A call goes
out when it would be full or when its oldest entry has waited `linger` seconds.

Every frame read ends as exactly one of: sent (an `Entry`), skipped (a canary or a filtered change) or rejected
(counted by reason, logged, and kept in the saved position's tallies). Skipped and rejected frames are
`Passage`s that move the durable position in arrival order, so a restart never reads them again and never
stops on them. Only a failure of a dependency (Kinesis, the source giving up) ends `run` with an exception.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from producer.batcher import MAX_BATCH_RECORDS, Entry, Passage, Rejected, Skipped, entry_for, parse_payload
from producer.filters import KEEP_ALL, ChangeFilter
from producer.pending import Pending
from producer.progress import Checkpoint, Gap, Mark, PartitionTracker, marks_of
from producer.sse_source import SourceEvent
from wikitide.metrics import BYTES, COUNT, NULL_METRICS, Metrics

logger = logging.getLogger(__name__)

_END = object()
# Python's own cost of one queued entry (objects, partition key, SSE id, marks) on top of its data, for the byte
# budget: an estimate, generous for the recorded events' keys and ids (a few hundred bytes each).
ENTRY_OVERHEAD_BYTES = 1024
# Rejections are logged one line each up to this many per reason in a process, then one in every thousand:
# a hostile stream must not fill the disk with log lines.
LOGGED_REJECTIONS = 100


class EntryWriter(Protocol):
    def put(self, entries: Sequence[Entry]) -> None: ...


@runtime_checkable
class SizedCalls(Protocol):
    """A writer whose calls should hold at most `max_call_entries` entries (read before each call). The durable
    position moves once per call, so a writer of slow single-record calls wants short ones; a writer without it
    gets PutRecords' 500."""

    @property
    def max_call_entries(self) -> int: ...


@dataclass
class ProducerStats:
    read: int = 0
    written: int = 0
    batches: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # by reason, this run
    skipped: Counter[str] = field(default_factory=Counter)
    truncated: int = 0  # events cut to fit a Kinesis record, this run
    last_id: str | None = None
    gaps: int = 0  # gaps reported, cumulative over restarts once their entries are durable
    missed: int = 0  # offsets those gaps missed


def footprint(item: Entry | Passage) -> int:
    return len(item.data) + ENTRY_OVERHEAD_BYTES if isinstance(item, Entry) else ENTRY_OVERHEAD_BYTES


class Budget:
    """Entries and bytes read but not yet durably in Kinesis. One entry is always admitted when none is held,
    so an event larger than the byte budget still goes through.

    Only the reader takes and only the writer frees, each on its own counters, so the common case (room left)
    takes no lock; the condition is used only to wait for room."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self._cond = threading.Condition()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._taken_entries = self._taken_bytes = 0
        self._freed_entries = self._freed_bytes = 0
        self._is_waiting = False

    def _has_room(self, size: int) -> bool:
        entries = self._taken_entries - self._freed_entries
        held = self._taken_bytes - self._freed_bytes
        return not entries or (entries < self._max_entries and held + size <= self._max_bytes)

    def acquire(self, size: int, stop: threading.Event) -> bool:
        """Wait for room for one entry of `size` bytes; False when `stop` was set meanwhile."""
        while not self._has_room(size):
            if stop.is_set():
                return False
            with self._cond:
                self._is_waiting = True
                # Checked again after raising the flag: a release that missed the flag is seen here.
                if not self._has_room(size):
                    self._cond.wait(0.5)
                self._is_waiting = False
        self._taken_entries += 1
        self._taken_bytes += size
        return True

    @property
    def held(self) -> tuple[int, int]:
        """Entries and bytes read but not yet durably in Kinesis (a snapshot; either side may move meanwhile)."""
        return self._taken_entries - self._freed_entries, self._taken_bytes - self._freed_bytes

    def release(self, entries: int, size: int) -> None:
        self._freed_entries += entries
        self._freed_bytes += size
        if self._is_waiting:
            with self._cond:
                self._cond.notify_all()


class Producer:
    def __init__(
        self,
        events: Iterable[SourceEvent],
        writer: EntryWriter,
        *,
        linger: float = 0.25,
        max_backlog: int = 5000,
        max_backlog_bytes: int = 16 * 1024 * 1024,
        keep: ChangeFilter = KEEP_ALL,
        checkpoint: Checkpoint | None = None,
        on_flushed: Callable[[Checkpoint], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        metrics: Metrics = NULL_METRICS,
    ) -> None:
        """`checkpoint` is the saved position this run resumes from (its partition offsets seed the gap check).
        `on_flushed(checkpoint)` runs after each PutRecords call that moved the durable position, after skipped or
        rejected frames moved it (at most once per `linger`), and once at the end: a restarted producer may
        resume from `checkpoint.last_event_id` without losing anything. `metrics` receives EventsRead,
        EventsWritten, EventsRejected, Gaps, MissedOffsets and, per call, BacklogEntries and BacklogBytes."""
        self._events = events
        self._writer = writer
        # Checked once: a runtime Protocol check is slow, and the limit is read before every call.
        self._sized = writer if isinstance(writer, SizedCalls) else None
        self._linger = linger
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._budget = Budget(max_backlog, max_backlog_bytes)
        self._keep = keep
        self._checkpoint = checkpoint or Checkpoint()
        self._tracker = PartitionTracker(self._checkpoint.partitions)
        self._on_flushed = on_flushed
        self._clock = clock
        self._wall_clock = wall_clock
        self._metrics = metrics
        for name in ("EventsRead", "EventsWritten", "EventsRejected", "Gaps", "MissedOffsets"):
            metrics.count(name, 0)  # published from the start, as 0 while nothing happens
        self.stats = ProducerStats(last_id=self._checkpoint.last_event_id, gaps=self._checkpoint.gaps,
                                   missed=self._checkpoint.missed)
        self.reader_error: BaseException | None = None
        self._is_unsaved = False

    @property
    def checkpoint(self) -> Checkpoint:
        return self._checkpoint

    def run(self, stop: threading.Event) -> ProducerStats:
        """Run until `stop` is set or the source ends; writes what was read before returning."""
        reader = threading.Thread(target=self._read, args=(stop,), name="sse-reader", daemon=True)
        reader.start()
        self._write(stop)
        if self.reader_error is not None:
            raise self.reader_error
        return self.stats

    def _read(self, stop: threading.Event) -> None:
        try:
            for event in self._events:
                if stop.is_set():
                    break
                self.stats.read += 1
                self._metrics.count("EventsRead")
                item = self._handle(event)
                if not self._budget.acquire(footprint(item), stop):
                    break
                self._queue.put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the writer thread, which re-raises it
            self.reader_error = exc
        finally:
            self._queue.put(_END)

    def _handle(self, event: SourceEvent) -> Entry | Passage:
        """The entry to send for one frame, or the passage that moves the position past it. Never raises for
        what the frame holds: an unforeseen error on one frame rejects that frame (`processing_error`)."""
        raw = None
        marks: tuple[Mark, ...] = ()
        gaps: tuple[Gap, ...] = ()
        reason = event.rejected
        received_ms = int(self._wall_clock() * 1000)
        try:
            if reason is None:
                try:
                    raw = parse_payload(event.data)
                except Rejected as exc:
                    reason = exc.reason
            marks = marks_of(raw, event.id)
            if marks:
                gaps = self._tracker.observe(marks, event.connection)
                for gap in gaps:
                    logger.warning("GAP: %s", gap.describe())
                    self._metrics.count("Gaps")
                    self._metrics.count("MissedOffsets", gap.missed)
            if raw is not None:
                try:
                    entry = entry_for(raw, event.data, event.id, self._keep, marks, gaps, received_ms)
                except Skipped as exc:
                    self.stats.skipped[exc.reason] += 1
                    return Passage(event.id, marks, gaps)
                except Rejected as exc:
                    reason = exc.reason
                else:
                    if entry.truncated:
                        self.stats.truncated += 1
                        logger.warning("event %s cut to fit a Kinesis record: %s", event.id, ", ".join(entry.truncated))
                    return entry
        except Exception:  # noqa: BLE001 - one frame must never stop the producer; the traceback is logged
            logger.exception("frame %.200s could not be handled; rejecting it", event.id)
            reason = "processing_error"
        assert reason is not None
        self._count_rejection(event, reason)
        return Passage(event.id, marks, gaps, rejected=reason)

    def _count_rejection(self, event: SourceEvent, reason: str) -> None:
        self.stats.rejected[reason] += 1
        self._metrics.count("EventsRejected")
        count = self.stats.rejected[reason]
        if count <= LOGGED_REJECTIONS or count % 1000 == 0:
            logger.warning("rejected frame %.200s (%s, %d so far in this run): %.160r",
                           event.id, reason, count, event.data[:160])

    def _write(self, stop: threading.Event) -> None:
        pending = Pending()
        saved_at = self._clock()
        while True:
            now = self._clock()
            deadline = pending.deadline(self._linger)
            # Wake at least every half second: the reader may be blocked in a quiet stream when stop comes.
            timeout = 0.5 if deadline is None else min(0.5, max(0.0, deadline - now))
            is_ended = self._take(pending, 0.0 if stop.is_set() else timeout)
            # Passages with nothing unwritten before them move the position at once; saving it waits for the
            # next call or `linger`, so a stream of skipped frames does not become a stream of saves.
            self._advance(pending.passable(), save=False)
            if is_ended or stop.is_set():
                while pending.has_heads:
                    self._send(pending)
                self._save()
                return
            if pending.is_ready(self._clock(), self._linger, self._call_limit()):
                self._send(pending)
                saved_at = self._clock()
            elif self._is_unsaved and self._clock() - saved_at >= self._linger:
                self._save()
                saved_at = self._clock()

    def _take(self, pending: Pending, timeout: float) -> bool:
        """Move what the reader queued into `pending`, waiting up to `timeout` for the first; True at the end."""
        try:
            item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return False
        now = self._clock()
        while True:
            if item is _END:
                return True
            if isinstance(item, Entry):
                pending.add(item, now)
            else:
                assert isinstance(item, Passage)
                pending.add_passage(item, now)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False

    def _call_limit(self) -> int:
        return self._sized.max_call_entries if self._sized is not None else MAX_BATCH_RECORDS

    def _send(self, pending: Pending) -> None:
        call = pending.next_call(self._call_limit())
        entries, size = self._budget.held  # what waits for Kinesis as this call starts, the call included
        self._metrics.observe("BacklogEntries", entries, COUNT)
        self._metrics.observe("BacklogBytes", size, BYTES)
        self._writer.put(call)
        self.stats.written += len(call)
        self.stats.batches += 1
        self._metrics.count("EventsWritten", len(call))
        self._advance(pending.written(), save=True)

    def _advance(self, passed: list[Entry | Passage], *, save: bool) -> None:
        if not passed:
            return
        self._budget.release(len(passed), sum(footprint(item) for item in passed))
        self._checkpoint = self._checkpoint.advanced(passed)
        self.stats.last_id = self._checkpoint.last_event_id
        self.stats.gaps, self.stats.missed = self._checkpoint.gaps, self._checkpoint.missed
        self._is_unsaved = True
        if save:
            self._save()

    def _save(self) -> None:
        if self._is_unsaved and self._on_flushed is not None:
            self._on_flushed(self._checkpoint)
        self._is_unsaved = False
