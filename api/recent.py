"""The recent changes as a filtered, resumable feed: the filter, the position a page ends at, and its cursor.

Pure: no flask, no redis. The feed is ordered by event time in milliseconds, newest first, then by the change's
de-duplication key (descending): the order of the Redis lists (`wikitide.keys.recent_member`) and of the events
table's time index (`wikitide.event_index`). A cursor names the last change a page returned; the next page is
every change strictly after it in that order, so changes stored meanwhile (newer ones, above the cursor) neither
shift nor repeat what a client pages through.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.errors import InvalidParameter
from api.filters import ChangeFilter

# Changes a single request may examine, whatever the filter: a filter that matches little gets a short page (or
# none) and a `next` cursor to go on from, rather than a scan of the day.
SCAN_LIMIT = 2000
# `<ms>-<the key's UTF-8 in hex>`: nothing a URL needs to escape.
CURSOR_PATTERN = r"([0-9]{1,15})-((?:[0-9a-f]{2}){0,400})"
_CURSOR = re.compile(CURSOR_PATTERN)


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where a change sorts in the feed: event time in ms, then de-duplication key. A larger one is newer."""

    ms: int
    key: str


@dataclass(frozen=True)
class RecentPage:
    """Up to `limit` matching changes, newest first; `next` is where the following page starts (None: the end
    of what is kept)."""

    edits: list[dict[str, Any]]
    next: Position | None


def cursor_of(position: Position) -> str:
    return f"{position.ms}-{position.key.encode('utf-8').hex()}"


def parse_cursor(raw: str | None) -> Position | None:
    """A cursor from a previous answer; any text of its shape is a position in the feed."""
    if raw is None:
        return None
    match = _CURSOR.fullmatch(raw)
    if match is None:
        raise InvalidParameter(f"cursor must be the 'next' value of a previous answer, got {raw[:80]!r}")
    return Position(int(match[1]), bytes.fromhex(match[2]).decode("utf-8", "replace"))


class Collector:
    """Walks the feed newest first, keeping what matches, within `scan_limit` examined changes.

    A source offers each change past `wants` in feed order while `offer` answers True, then asks for the `page`,
    saying where it would go on (None when it ran out). A stopped scan's `next` is its last examined change."""

    def __init__(self, matches: ChangeFilter, after: Position | None, limit: int, scan_limit: int = SCAN_LIMIT):
        self._filter = matches
        self._after = after
        self._limit = limit
        self._scan_limit = scan_limit
        self.examined = 0
        self.last: Position | None = None
        self._edits: list[dict[str, Any]] = []

    def wants(self, position: Position) -> bool:
        """Whether `position` is past the cursor and past everything offered so far."""
        bound = self.last or self._after
        return bound is None or position < bound

    def offer(self, position: Position, doc: Mapping[str, Any]) -> bool:
        self.examined += 1
        self.last = position
        if doc and self._filter.matches(doc):  # an unreadable change ({}) is passed over, never listed
            self._edits.append(dict(doc))
        return not self.is_done

    @property
    def is_done(self) -> bool:
        return len(self._edits) >= self._limit or self.examined >= self._scan_limit

    def page(self, resume: Position | None) -> RecentPage:
        return RecentPage(self._edits, self.last if self.is_done else resume)
