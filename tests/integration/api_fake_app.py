"""The API over in-memory ports, for tests that run it under a real gunicorn:
`gunicorn -c python:api.serving 'tests.integration.api_fake_app:create()'` from the repository root."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask import Flask

from api import create_app


class EmptyStats:
    def latest_minute(self) -> int | None:
        return None

    def minute_counts(self, minutes: Sequence[int], wiki: str | None) -> list[Mapping[str, str | int]]:
        return [{} for _ in minutes]

    def page_scores(self, minutes: Sequence[int], wiki: str | None, limit: int) -> list[tuple[str, float]]:
        return []

    def recent_edits(self, wiki: str | None, limit: int) -> list[dict[str, Any]]:
        return []


class NoEdits:
    def get_edit(self, wiki: str, rev_id: int) -> dict[str, Any] | None:
        return None

    def latest_change(self, wiki: str, title: str) -> dict[str, Any] | None:
        return None


def create() -> Flask:
    return create_app(stats=EmptyStats(), edits=NoEdits(), health_checks={"memory": lambda: None})
