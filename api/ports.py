"""The ports the routes read through: `RedisStats`, `DynamoEdits` in production, fakes in tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from api.filters import ChangeFilter
from api.recent import Position, RecentPage

# A dependency check returns when the dependency answered and raises (anything) when it did not.
HealthCheck = Callable[[], object]


class StatsStore(Protocol):
    """Reads what the KCL processor wrote to Redis (see `wikitide.keys`). Raises `DependencyUnavailable`."""

    def latest_minute(self) -> int | None:
        """The epoch minute of the newest processed event, `None` before the first one."""
        ...

    def minute_counts(self, minutes: Sequence[int], wiki: str | None) -> list[Mapping[str, str | int]]:
        """The counter hash of each minute (empty when absent), overall or for one wiki."""
        ...

    def page_scores(self, minutes: Sequence[int], wiki: str | None, limit: int) -> list[tuple[str, float]]:
        """Page members with their edit counts summed over `minutes`.

        Enough pages that ranking the answer with `api.windows.rank_pages` gives the true top `limit`: at least
        the `limit` best by that ranking (edits, then title, then wiki) and any more pages.
        """
        ...

    def wiki_totals(self, first: int, last: int) -> dict[str, dict[str, int]]:
        """Every wiki's `wikitide.keys.WIKI_FIELDS` summed over the minutes `first..last` (a window ending with
        the newest minute); wikis without events may be missing."""
        ...

    def page_edits(self, wiki: str, title: str, spans: Sequence[tuple[int, int]]) -> list[int]:
        """The page's edits (edit + new revisions) in each span of minutes `(first, last)`, in order."""
        ...

    def hour_page_edits(self, members: Sequence[str], hours: Sequence[int]) -> dict[str, int]:
        """Each page member's edits summed over the epoch hours `hours` (absent: 0). With no members: `{}` from a
        store that keeps the hourly page counts, without reading anything; `DependencyUnavailable` from one that
        does not (callers ask that way before doing work that needs them)."""
        ...

    def recent(self, matches: ChangeFilter, after: Position | None, limit: int) -> RecentPage:
        """The newest changes after `after` that match, by the feed order of `api.recent` (see `Collector`)."""
        ...


class EditStore(Protocol):
    def get_edit(self, wiki: str, rev_id: int) -> dict[str, Any] | None:
        """The stored enriched event of that revision, `None` if unknown. Raises `DependencyUnavailable`."""
        ...

    def latest_change(self, wiki: str, title: str) -> dict[str, Any] | None:
        """The newest stored change of that page (by event time), `None` if unknown. Raises `DependencyUnavailable`."""
        ...

    def page_changes(self, wiki: str, title: str, limit: int) -> list[dict[str, Any]]:
        """The page's last `limit` stored changes, newest first. Raises `DependencyUnavailable`."""
        ...


HealthChecks = Mapping[str, HealthCheck]


def feed_key(entry_id: str) -> tuple[int, int]:
    """The order of a feed entry id `<milliseconds>-<sequence>` (as Redis Streams number entries)."""
    millis, _, sequence = entry_id.partition("-")
    return int(millis), int(sequence or 0)


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One change of the live feed: its id (the SSE `id:`), the enriched document's JSON text and the document."""

    id: str
    key: tuple[int, int]
    text: str
    doc: Any
    frame: str  # the SSE event, made once for every client

    @classmethod
    def of(cls, entry_id: str, text: str) -> FeedEntry:
        return cls(entry_id, feed_key(entry_id), text, json.loads(text), f"id: {entry_id}\ndata: {text}\n\n")


@dataclass(frozen=True, slots=True)
class FeedBounds:
    """What the live feed keeps: the ids of its oldest and newest entries (`None` when empty), and whether entries
    older than `oldest` were dropped by its cap (a feed that never reached its cap has lost nothing)."""

    oldest: str | None
    newest: str | None
    is_trimmed: bool


class FeedLog(Protocol):
    """The live feed's store, the capped Redis Stream the processors append to. Raises `DependencyUnavailable`."""

    def read(self, after: str, count: int, block_ms: int | None = None) -> list[FeedEntry]:
        """Up to `count` entries with ids after `after`, oldest first. When there are none it waits up to
        `block_ms` for the first (`None`: no wait) and returns `[]` if none came."""
        ...

    def bounds(self) -> FeedBounds:
        ...


@dataclass(frozen=True)
class Services:
    """What the routes read through; kept in `app.extensions["wikitide"]` by `create_app`."""

    stats: StatsStore
    edits: EditStore
    health: HealthReport
    feed: FeedLog | None = None
    fanout: Any = None  # api.fanout.Fanout over `feed`, one per app (per gunicorn worker process)


class HealthReport(Protocol):
    def results(self) -> tuple[dict[str, dict[str, Any]], float]:
        """`({dependency: {"ok": bool, "latency_ms": float, "error"?: str}}, age of that round in seconds)`."""
        ...
