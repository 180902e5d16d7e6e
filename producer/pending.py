"""Entries read but not yet in Kinesis, planned into PutRecords calls that keep every page's order. Pure.

Each page (partition key) has a FIFO. A call takes at most the head of each page, oldest heads first, up to
500 entries and 5 MiB. A page's next entry becomes a head only once the call holding the previous one was
written in full (`written`), so a page's later change never overtakes an earlier, failed or unwritten one,
while other pages fill the rest of the call: a hot page no longer splits every batch into many small calls.

The checkpoint follows arrival order: `written` returns the entries that now have every earlier entry
written too, so the durable position never passes an unwritten entry. A frame that is not sent (skipped or
rejected) is a `Passage`: it takes its place in that order as if already written, and `passable` returns it
once everything before it is in Kinesis, so the position moves past it without a PutRecords call.
"""

from __future__ import annotations

import heapq
from collections import deque

from producer.batcher import MAX_BATCH_BYTES, MAX_BATCH_RECORDS, Entry, Passage


class Pending:
    """Entries are numbered in arrival order; pages, heads and the current call hold numbers, not objects, so
    holding an entry costs no extra object for the garbage collector to trace."""

    def __init__(self) -> None:
        self._entries: dict[int, Entry | Passage] = {}  # every entry and passage held, by arrival number
        self._arrived: dict[int, float] = {}
        self._pages: dict[str, deque[int]] = {}
        self._heads: list[tuple[int, str]] = []  # (number, page) of every page head not in the current call
        self._call: list[tuple[int, str]] = []  # (number, page) of each entry in the current call
        self._written: set[int] = set()  # written, but behind an unwritten entry in arrival order
        self._next = 0  # the number of the next entry to arrive
        self._low = 0  # the oldest entry held

    def __len__(self) -> int:
        """Entries held: unwritten ones, and written ones still behind an unwritten one in arrival order."""
        return len(self._entries)

    def add(self, entry: Entry, now: float) -> None:
        seq, page = self._next, entry.partition_key
        self._next += 1
        self._entries[seq] = entry
        self._arrived[seq] = now
        queue = self._pages.get(page)
        if queue is None:
            self._pages[page] = deque((seq,))
            heapq.heappush(self._heads, (seq, page))
        else:
            queue.append(seq)

    def add_passage(self, passage: Passage, now: float) -> None:
        seq = self._next
        self._next += 1
        self._entries[seq] = passage
        self._arrived[seq] = now
        self._written.add(seq)

    @property
    def has_heads(self) -> bool:
        return bool(self._heads)

    def deadline(self, linger: float) -> float | None:
        """When the oldest head has waited `linger`; None when no entry waits for a call."""
        if not self._heads:
            return None
        return self._arrived[self._heads[0][0]] + linger

    def is_ready(self, now: float, linger: float, limit: int = MAX_BATCH_RECORDS) -> bool:
        """A call of at most `limit` entries is worth sending: it would be full, or its oldest entry has waited
        `linger`."""
        deadline = self.deadline(linger)
        return deadline is not None and (len(self._heads) >= limit or now >= deadline)

    def next_call(self, limit: int = MAX_BATCH_RECORDS) -> list[Entry]:
        """The entries of the next call, at most `limit` and one per page; call `written` once it succeeded."""
        if self._call:
            raise RuntimeError("the previous call was not written")
        size = 0
        entries: list[Entry] = []
        while self._heads and len(entries) < min(limit, MAX_BATCH_RECORDS):
            entry = self._entries[self._heads[0][0]]
            assert isinstance(entry, Entry)
            if entries and size + entry.size > MAX_BATCH_BYTES:
                break
            self._call.append(heapq.heappop(self._heads))
            entries.append(entry)
            size += entry.size
        return entries

    def written(self) -> list[Entry | Passage]:
        """Mark the current call written; return what the durable position may now pass, in order."""
        for _, page in self._call:
            queue = self._pages[page]
            queue.popleft()
            if queue:
                heapq.heappush(self._heads, (queue[0], page))
            else:
                del self._pages[page]
        self._written.update(seq for seq, _ in self._call)
        self._call = []
        return self.passable()

    def passable(self) -> list[Entry | Passage]:
        """What the durable position may pass now, in arrival order (passages with nothing unwritten before them)."""
        passed: list[Entry | Passage] = []
        while self._low in self._written:
            self._written.discard(self._low)
            del self._arrived[self._low]
            passed.append(self._entries.pop(self._low))
            self._low += 1
        return passed
