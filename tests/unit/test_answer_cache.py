"""An API process reuses a read endpoint's whole 200 answer to the same URL for a second, and nothing else."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flask.testing import FlaskClient

from api import create_app
from api.answer_cache import AnswerCache
from api.limits import RateLimits
from tests.unit.api_fakes import EmptyStats, NoEdits


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingStats(EmptyStats):
    """One minute of one edit; counts the reads of the store."""

    def __init__(self) -> None:
        self.reads = 0

    def latest_minute(self) -> int | None:
        self.reads += 1
        return 29_000_000

    def minute_counts(self, minutes: Sequence[int], wiki: str | None) -> list[Mapping[str, str | int]]:
        return [{"events": self.reads}] + [{} for _ in minutes[1:]]


def test_an_answer_is_kept_for_its_seconds_then_read_again() -> None:
    clock = Clock()
    cache = AnswerCache(1.0, clock=clock)
    cache.put("/a", b"one", "application/json")
    clock.now += 0.99
    kept = cache.get("/a")
    assert kept is not None and kept.body == b"one" and cache.age(kept) == 0
    clock.now += 0.01
    assert cache.get("/a") is None
    assert cache.held_bytes == 0 and len(cache) == 0


def test_the_oldest_answers_go_first_when_the_bytes_run_out() -> None:
    cache = AnswerCache(60.0, max_bytes=10, clock=Clock())
    for key in "abcd":
        cache.put(key, b"xxx", "application/json")
    assert [key for key in "abcd" if cache.get(key)] == ["b", "c", "d"]
    assert cache.held_bytes == 9
    cache.put("big", b"x" * 11, "application/json")  # larger than the whole cache: never kept
    assert cache.get("big") is None and cache.held_bytes == 9


def _app(stats: CountingStats, *, cache_seconds: float, limits: RateLimits | None = None) -> FlaskClient:
    return create_app(stats=stats, edits=NoEdits(), health_checks={}, answer_cache_seconds=cache_seconds,
                      rate_limits=limits).test_client()


def test_the_same_url_is_answered_once_a_second_and_other_urls_on_their_own() -> None:
    stats = CountingStats()
    client = _app(stats, cache_seconds=60)
    first = client.get("/v1/stats?window=5m")
    again = client.get("/v1/stats?window=5m")
    assert first.status_code == again.status_code == 200
    assert again.get_data() == first.get_data() and again.headers["Age"] == "0"
    assert again.mimetype == "application/json" and "Age" not in first.headers
    assert stats.reads == 1
    assert client.get("/v1/stats?window=1h").status_code == 200
    assert stats.reads == 2  # another query string is another answer
    assert client.get("/health").status_code == 200 and client.get("/health").status_code == 200


def test_refusals_are_never_kept_and_a_kept_answer_still_counts_against_the_rate_limit() -> None:
    stats = CountingStats()
    client = _app(stats, cache_seconds=60, limits=RateLimits(queries="3/minute"))
    assert client.get("/v1/stats?window=7x").status_code == 400
    assert client.get("/v1/stats?window=7x").status_code == 400  # asked again: parsed again, not kept
    assert client.get("/v1/stats?window=1m").status_code == 200
    assert client.get("/v1/stats?window=1m").status_code == 429
    assert stats.reads == 1


def test_off_means_every_request_reads_the_stores() -> None:
    stats = CountingStats()
    client = _app(stats, cache_seconds=0)
    for _ in range(3):
        assert client.get("/v1/stats?window=5m").status_code == 200
    assert stats.reads == 3
