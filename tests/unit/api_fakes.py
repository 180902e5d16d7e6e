"""In-memory implementations of the API's read ports (`api.ports`) that hold nothing: the base of the fakes that
tests and benchmarks give `api.create_app` when a store's contents do not matter to them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from api.filters import ChangeFilter
from api.recent import Position, RecentPage


class EmptyStats:
    """A `StatsStore` with no events: every window is empty. Subclass it to answer one query differently."""

    def latest_minute(self) -> int | None:
        return None

    def minute_counts(self, minutes: Sequence[int], wiki: str | None) -> list[Mapping[str, str | int]]:
        return [{} for _ in minutes]

    def page_scores(self, minutes: Sequence[int], wiki: str | None, limit: int) -> list[tuple[str, float]]:
        return []

    def wiki_totals(self, first: int, last: int) -> dict[str, dict[str, int]]:
        return {}

    def page_edits(self, wiki: str, title: str, spans: Sequence[tuple[int, int]]) -> list[int]:
        return [0 for _ in spans]

    def hour_page_edits(self, members: Sequence[str], hours: Sequence[int]) -> dict[str, int]:
        return {}

    def recent(self, matches: ChangeFilter, after: Position | None, limit: int) -> RecentPage:
        return RecentPage([], None)


class NoEdits:
    """An `EditsStore` that holds no change."""

    def get_edit(self, wiki: str, rev_id: int) -> dict[str, Any] | None:
        return None

    def latest_change(self, wiki: str, title: str) -> dict[str, Any] | None:
        return None

    def page_changes(self, wiki: str, title: str, limit: int) -> list[dict[str, Any]]:
        return []
