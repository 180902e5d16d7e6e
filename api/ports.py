"""The ports the routes read through: `RedisStats`, `DynamoEdits` in production, fakes in tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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

    def recent_edits(self, wiki: str | None, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` enriched events, newest event time first."""
        ...


class EditStore(Protocol):
    def get_edit(self, wiki: str, rev_id: int) -> dict[str, Any] | None:
        """The stored enriched event of that revision, `None` if unknown. Raises `DependencyUnavailable`."""
        ...

    def latest_change(self, wiki: str, title: str) -> dict[str, Any] | None:
        """The newest stored change of that page (by event time), `None` if unknown. Raises `DependencyUnavailable`."""
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
