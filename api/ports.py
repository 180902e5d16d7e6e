"""The ports the routes read through: `RedisStats`, `DynamoEdits` in production, fakes in tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from api.recent import Position, RecentFilter, RecentPage

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
        """Each page member's edits summed over the epoch hours `hours` (absent: 0)."""
        ...

    def recent(self, matches: RecentFilter, after: Position | None, limit: int) -> RecentPage:
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


@dataclass(frozen=True)
class Services:
    """What the routes read through; kept in `app.extensions["wikitide"]` by `create_app`."""

    stats: StatsStore
    edits: EditStore
    health: HealthReport


class HealthReport(Protocol):
    def results(self) -> tuple[dict[str, dict[str, Any]], float]:
        """`({dependency: {"ok": bool, "latency_ms": float, "error"?: str}}, age of that round in seconds)`."""
        ...
