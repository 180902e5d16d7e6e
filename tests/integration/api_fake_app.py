"""The API over in-memory ports, for tests that run it under a real gunicorn:
`gunicorn -c python:api.serving 'tests.integration.api_fake_app:create()'` from the repository root."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask import Flask

from api import create_app
from api.filters import ChangeFilter
from api.recent import Position, RecentPage


class EmptyStats:
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
    def get_edit(self, wiki: str, rev_id: int) -> dict[str, Any] | None:
        return None

    def latest_change(self, wiki: str, title: str) -> dict[str, Any] | None:
        return None

    def page_changes(self, wiki: str, title: str, limit: int) -> list[dict[str, Any]]:
        return []


def create() -> Flask:
    return create_app(stats=EmptyStats(), edits=NoEdits(), health_checks={"memory": lambda: None})
