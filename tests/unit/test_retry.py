"""The retry policies: bounded by attempts and by a deadline, with a switch that makes tests fast."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from api.fallback_stats import FallbackStats
from kcl_app.dynamo_store import WritePool
from wikitide import retry
from wikitide.errors import DependencyUnavailable


class Flaky(Exception):
    pass


@pytest.fixture
def testing() -> Iterator[None]:
    retry.set_testing(True)
    yield
    retry.set_testing(False)


def test_a_policy_stops_at_its_attempts_and_the_last_error_leaves(testing: None) -> None:
    calls = []

    def failing() -> None:
        calls.append(1)
        raise Flaky(len(calls))

    with pytest.raises(Flaky, match="4"):
        retry.bounded(failing, retry_on=(Flaky,), policy=retry.Policy("t", attempts=4, deadline=60))
    assert len(calls) == 4


def test_no_new_attempt_starts_after_the_deadline(testing: None) -> None:
    calls = []

    def slow() -> None:
        calls.append(1)
        time.sleep(0.2)
        raise Flaky()

    started = time.monotonic()
    with pytest.raises(Flaky):
        retry.bounded(slow, retry_on=(Flaky,), policy=retry.Policy("t", attempts=100, deadline=0.5))
    assert 2 <= len(calls) <= 4
    assert time.monotonic() - started < retry.Policy("t", attempts=100, deadline=0.5).worst_case(0.2) + 0.5


def test_testing_switch_makes_waits_short_and_keeps_attempts() -> None:
    policy = retry.Policy("t", attempts=5, deadline=60, initial=1.0, max_delay=1.0)
    calls = []

    def failing() -> None:
        calls.append(1)
        raise Flaky()

    retry.set_testing(True)
    try:
        started = time.monotonic()
        with pytest.raises(Flaky):
            retry.bounded(failing, retry_on=(Flaky,), policy=policy)
    finally:
        retry.set_testing(False)
    assert len(calls) == 5
    assert time.monotonic() - started < 1.0
    assert not retry.is_testing()


def test_other_errors_are_not_retried(testing: None) -> None:
    calls = []

    def wrong() -> None:
        calls.append(1)
        raise ValueError("not transient")

    with pytest.raises(ValueError):
        retry.bounded(wrong, retry_on=(Flaky,), policy=retry.PROCESSOR_DYNAMODB)
    assert len(calls) == 1


def test_a_write_pool_cancels_queued_writes_after_the_first_failure() -> None:
    pool = WritePool(workers=1)
    started: list[int] = []

    def write(item: int) -> int:
        started.append(item)
        if item == 0:
            raise DependencyUnavailable("store down")
        return item

    with pytest.raises(DependencyUnavailable):
        pool.map(write, list(range(50)))
    time.sleep(0.2)
    assert len(started) < 50


class Store:
    def __init__(self, name: str) -> None:
        self.name = name
        self.reads = 0
        self.fails = False

    def latest_minute(self) -> int | None:
        self.reads += 1
        if self.fails:
            raise DependencyUnavailable(f"{self.name} does not answer")
        return 1

    def minute_counts(self, minutes: Sequence[int], wiki: str | None) -> list[Mapping[str, str | int]]:
        raise NotImplementedError

    def page_scores(self, minutes: Sequence[int], wiki: str | None, limit: int) -> list[tuple[str, float]]:
        raise NotImplementedError

    def wiki_totals(self, first: int, last: int) -> dict[str, dict[str, int]]:
        raise NotImplementedError

    def page_edits(self, wiki: str, title: str, spans: Sequence[tuple[int, int]]) -> list[int]:
        raise NotImplementedError

    def hour_page_edits(self, members: Sequence[str], hours: Sequence[int]) -> dict[str, int]:
        raise NotImplementedError

    def recent(self, matches: Any, after: Any, limit: int) -> Any:
        raise NotImplementedError


def test_a_failed_redis_is_not_asked_again_until_the_cooloff_ends() -> None:
    now = [100.0]
    redis_store, dynamo_store = Store("redis"), Store("dynamodb")
    stats = FallbackStats(redis_store, lambda: dynamo_store, lambda: True, cooloff=5.0, clock=lambda: now[0])
    redis_store.fails = True
    for _ in range(3):
        assert stats.latest_minute() == 1
    assert (redis_store.reads, dynamo_store.reads) == (1, 3)
    now[0] += 5.0
    redis_store.fails = False
    assert stats.latest_minute() == 1
    assert (redis_store.reads, dynamo_store.reads) == (2, 3)
