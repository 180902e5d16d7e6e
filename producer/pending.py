"""Entries read but not yet in Kinesis, planned into PutRecords calls that keep every page's order. Pure.

Each page (partition key) has a FIFO. A call takes at most the head of each page, oldest heads first, up to
500 entries and 5 MiB. A page's next entry becomes a head only once the call holding the previous one was
written in full (`written`), so a page's later change never overtakes an earlier, failed or unwritten one,
while other pages fill the rest of the call: a hot page no longer splits every batch into many small calls.

The checkpoint follows arrival order: `written` returns the entries that now have every earlier entry
written too, so the durable position never passes an unwritten entry.
"""

from __future__ import annotations

import heapq
from collections import deque

from producer.batcher import MAX_BATCH_BYTES, MAX_BATCH_RECORDS, Entry


class _Slot:
    __slots__ = ("seq", "entry", "arrived", "is_written")

    def __init__(self, seq: int, entry: Entry, arrived: float) -> None:
        self.seq = seq
        self.entry = entry
        self.arrived = arrived
        self.is_written = False


class Pending:
    def __init__(self) -> None:
        self._pages: dict[str, deque[_Slot]] = {}
        self._heads: list[tuple[int, str]] = []  # (seq, page) of every page head not in the current call
        self._order: deque[_Slot] = deque()
        self._call: list[_Slot] = []
        self._seq = 0

    def __len__(self) -> int:
        """Entries held: unwritten ones, and written ones still behind an unwritten one in arrival order."""
        return len(self._order)

    def add(self, entry: Entry, now: float) -> None:
        slot = _Slot(self._seq, entry, now)
        self._seq += 1
        self._order.append(slot)
        page = self._pages.get(entry.partition_key)
        if page is None:
            self._pages[entry.partition_key] = deque((slot,))
            heapq.heappush(self._heads, (slot.seq, entry.partition_key))
        else:
            page.append(slot)

    @property
    def has_heads(self) -> bool:
        return bool(self._heads)

    def deadline(self, linger: float) -> float | None:
        """When the oldest head has waited `linger`; None when no entry waits for a call."""
        if not self._heads:
            return None
        return self._pages[self._heads[0][1]][0].arrived + linger

    def is_ready(self, now: float, linger: float) -> bool:
        """A call is worth sending: it would be full, or its oldest entry has waited `linger`."""
        deadline = self.deadline(linger)
        return deadline is not None and (len(self._heads) >= MAX_BATCH_RECORDS or now >= deadline)

    def next_call(self) -> list[Entry]:
        """The entries of the next PutRecords call, one per page at most; call `written` once it succeeded."""
        if self._call:
            raise RuntimeError("the previous call was not written")
        size = 0
        while self._heads and len(self._call) < MAX_BATCH_RECORDS:
            seq, page = self._heads[0]
            slot = self._pages[page][0]
            if self._call and size + slot.entry.size > MAX_BATCH_BYTES:
                break
            heapq.heappop(self._heads)
            self._call.append(slot)
            size += slot.entry.size
        return [slot.entry for slot in self._call]

    def written(self) -> list[Entry]:
        """Mark the current call written; return the entries the durable position may now pass, in order."""
        for slot in self._call:
            slot.is_written = True
            page = self._pages[slot.entry.partition_key]
            page.popleft()
            if page:
                heapq.heappush(self._heads, (page[0].seq, slot.entry.partition_key))
            else:
                del self._pages[slot.entry.partition_key]
        self._call = []
        passed = []
        while self._order and self._order[0].is_written:
            passed.append(self._order.popleft().entry)
        return passed
