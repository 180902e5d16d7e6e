"""A `FeedLog` in memory: entries numbered like a Redis Stream's, a blocking read that wakes on `append`."""

from __future__ import annotations

import json
import threading
from typing import Any

from api.ports import FeedBounds, FeedEntry, feed_key


class FakeFeedLog:
    def __init__(self, maxlen: int | None = None) -> None:
        self.entries: list[FeedEntry] = []
        self.maxlen = maxlen
        self.reads = 0
        self.appended = 0
        self.is_down = False
        self._cond = threading.Condition()
        self._millis = 1_733_130_000_000

    def append(self, doc: dict[str, Any]) -> str:
        with self._cond:
            self._millis += 1
            entry = FeedEntry.of(f"{self._millis}-0", json.dumps(doc))
            self.entries.append(entry)
            self.appended += 1
            if self.maxlen is not None:
                del self.entries[: max(0, len(self.entries) - self.maxlen)]
            self._cond.notify_all()
            return entry.id

    def _check(self) -> None:
        from wikitide.errors import DependencyUnavailable

        if self.is_down:
            raise DependencyUnavailable("the live feed could not be read (Redis)")

    def read(self, after: str, count: int, block_ms: int | None = None) -> list[FeedEntry]:
        self._check()
        self.reads += 1
        with self._cond:
            found = [e for e in self.entries if e.key > feed_key(after)][:count]
            if not found and block_ms:
                self._cond.wait(block_ms / 1000)
                found = [e for e in self.entries if e.key > feed_key(after)][:count]
            return found

    def bounds(self) -> FeedBounds:
        self._check()
        with self._cond:
            if not self.entries:
                return FeedBounds(None, None, self.appended > 0)
            return FeedBounds(self.entries[0].id, self.entries[-1].id, self.appended > len(self.entries))
