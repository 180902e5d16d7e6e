"""The producer loop: an SSE reader thread feeds a bounded queue; the writer drains it into PutRecords batches.

The bounded queue is the backpressure: when Kinesis is slow the reader blocks, and the server holds the
stream for us. A batch is flushed when full or when its oldest entry has waited `linger` seconds.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from producer.batcher import Batch, Entry, Rejected, Skipped, to_entry
from producer.filters import KEEP_ALL, ChangeFilter
from producer.sse_source import SourceEvent

logger = logging.getLogger(__name__)

_END = object()


class EntryWriter(Protocol):
    def put(self, entries: Sequence[Entry]) -> None: ...


@dataclass
class ProducerStats:
    read: int = 0
    written: int = 0
    batches: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    last_id: str | None = None


class Producer:
    def __init__(
        self,
        events: Iterable[SourceEvent],
        writer: EntryWriter,
        *,
        linger: float = 0.25,
        queue_size: int = 5000,
        keep: ChangeFilter = KEEP_ALL,
        on_flushed: Callable[[str | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`on_flushed(last_id)` runs after each batch is in Kinesis, with the SSE id of its last event:
        the position from which a restarted producer may resume without losing anything."""
        self._events = events
        self._writer = writer
        self._linger = linger
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._keep = keep
        self._on_flushed = on_flushed
        self._clock = clock
        self.stats = ProducerStats()
        self.reader_error: BaseException | None = None

    def run(self, stop: threading.Event) -> ProducerStats:
        """Run until `stop` is set or the source ends; flushes what was read before returning."""
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
                try:
                    entry = to_entry(event.data, event.id, self._keep)
                except Rejected as exc:
                    self.stats.rejected[exc.reason] += 1
                    logger.warning("dropped event %s (%s): %.160r", event.id, exc.reason, event.data)
                    continue
                except Skipped as exc:
                    self.stats.skipped[exc.reason] += 1
                    continue
                while not stop.is_set():
                    try:
                        self._queue.put(entry, timeout=0.5)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # noqa: BLE001 - handed to the writer thread, which re-raises it
            self.reader_error = exc
        finally:
            self._queue.put(_END)

    def _write(self, stop: threading.Event) -> None:
        batch = Batch()
        deadline: float | None = None
        while True:
            # Wake at least every half second: the reader may be blocked in a quiet stream when stop comes.
            timeout = 0.5 if deadline is None else min(0.5, max(0.0, deadline - self._clock()))
            try:
                item = self._queue.get(timeout=timeout if not stop.is_set() else 0.05)
            except queue.Empty:
                item = None
            if item is _END:
                self._flush(batch)
                return
            if isinstance(item, Entry):
                if not batch.fits(item):
                    self._flush(batch)
                    batch, deadline = Batch(), None
                batch.add(item)
                if deadline is None:
                    deadline = self._clock() + self._linger
            expired = deadline is not None and self._clock() >= deadline
            if expired or (item is None and stop.is_set()):
                self._flush(batch)
                batch, deadline = Batch(), None
                if stop.is_set() and item is None:
                    return

    def _flush(self, batch: Batch) -> None:
        if not batch.entries:
            return
        self._writer.put(batch.entries)
        self.stats.written += len(batch)
        self.stats.batches += 1
        self.stats.last_id = batch.entries[-1].sse_id
        if self._on_flushed is not None:
            self._on_flushed(self.stats.last_id)
