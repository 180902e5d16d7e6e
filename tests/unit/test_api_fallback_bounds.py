"""The DynamoDB fallback bounds its work per request: top pages over more minutes of edits than it may read are a
503 (the answer waits for Redis), never a read of every stored change of a day; trending (whose baselines
DynamoDB does not keep) is refused before the window is read."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import pytest

from api.dynamo_stats import PAGE_MINUTES, DynamoStats
from wikitide.errors import DependencyUnavailable


class MinutesOfEdits(DynamoStats):
    """DynamoStats whose counter cells say each minute held one edit; counts the minutes whose changes it read."""

    def __init__(self) -> None:
        super().__init__(client=None, table="counters", events_table="events", parallel=1)
        self.read: list[int] = []

    def minute_counts(self, minutes: Sequence[int], wiki: str | None) -> list[Mapping[str, str | int]]:
        return [{"edit": 1} for _ in minutes]

    def _pages_of(self, minute: int, wiki: str | None) -> Counter[str]:
        self.read.append(minute)
        return Counter({f"w\tPage {minute % 3}": 1})


def test_top_pages_over_the_bound_wait_for_redis_without_reading_a_change() -> None:
    store = MinutesOfEdits()
    assert dict(store.page_scores(list(range(PAGE_MINUTES)), None, 10)) == {
        "w\tPage 0": 20.0, "w\tPage 1": 20.0, "w\tPage 2": 20.0}
    assert len(store.read) == PAGE_MINUTES
    store.read.clear()
    with pytest.raises(DependencyUnavailable, match="Redis only"):
        store.page_scores(list(range(PAGE_MINUTES + 1)), None, 10)
    assert store.read == []


class OneMinuteStored(MinutesOfEdits):
    """The same, also counting what it was asked for, with a newest minute."""

    def __init__(self) -> None:
        super().__init__()
        self.counted: list[int] = []

    def latest_minute(self) -> int | None:
        return 29_000_000

    def minute_counts(self, minutes: Sequence[int], wiki: str | None) -> list[Mapping[str, str | int]]:
        self.counted += minutes
        return super().minute_counts(minutes, wiki)


def test_trending_from_dynamodb_is_refused_before_reading_the_window() -> None:
    from api.queries import trending_pages

    store = OneMinuteStored()
    with pytest.raises(DependencyUnavailable, match="trending baselines"):
        trending_pages(store, "1h", None, 10)
    assert store.counted == [] and store.read == []
