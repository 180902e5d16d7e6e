"""An API process reuses a read endpoint's whole 200 answer to the same URL for a second, only while the read
model's version has not moved, and nothing else."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

import pytest
from flask.testing import FlaskClient

from api import answer_cache, create_app
from api.answer_cache import AnswerCache, DataVersion
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
    previous = cache.previous("/a")  # for the requests that arrive while it is computed again
    assert previous is not None and previous.body == b"one"
    clock.now += answer_cache.SERVE_PREVIOUS_SECONDS
    assert cache.previous("/a") is None and cache.get("/a") is None
    assert cache.held_bytes == 0 and len(cache) == 0


def test_the_oldest_answers_go_first_when_the_bytes_run_out() -> None:
    cache = AnswerCache(60.0, max_bytes=10, clock=Clock())
    for key in "abcd":
        cache.put(key, b"xxx", "application/json")
    assert [key for key in "abcd" if cache.get(key)] == ["b", "c", "d"]
    assert cache.held_bytes == 9
    cache.put("big", b"x" * 11, "application/json")  # larger than the whole cache: never kept
    assert cache.get("big") is None and cache.held_bytes == 9


def _app(stats: CountingStats, *, cache_seconds: float, limits: RateLimits | None = None,
         version: Callable[[], object | None] | None = None) -> FlaskClient:
    return create_app(stats=stats, edits=NoEdits(), health_checks={}, answer_cache_seconds=cache_seconds,
                      rate_limits=limits, data_version=version).test_client()


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


def test_an_answer_is_kept_only_under_the_version_it_was_computed_at() -> None:
    cache = AnswerCache(60.0, clock=Clock())
    cache.put("/a", b"one", "application/json", "7")
    assert cache.get("/a", "7") is not None
    assert cache.get("/a", "8") is None  # the data moved: not an answer for the new version
    previous = cache.previous("/a")  # only for the requests that arrive while the new one is computed
    assert previous is not None and previous.body == b"one"
    cache.put("/a", b"two", "application/json", "8")
    kept = cache.get("/a", "8")
    assert kept is not None and kept.body == b"two" and cache.held_bytes == 3


def test_a_write_of_the_read_model_ends_the_kept_answers_at_once() -> None:
    stats, version = CountingStats(), ["1"]
    client = _app(stats, cache_seconds=60, version=lambda: version[0])
    assert client.get("/v1/stats?window=5m").get_json()["events"] == 1
    assert client.get("/v1/stats?window=5m").get_json()["events"] == 1 and stats.reads == 1
    version[0] = "2"  # a processor published a batch
    assert client.get("/v1/stats?window=5m").get_json()["events"] == 2
    assert client.get("/v1/stats?window=5m").headers["Age"] == "0" and stats.reads == 2
    version[0] = None  # the version cannot be read: the ttl alone, from the next answer on
    assert client.get("/v1/stats?window=5m").get_json()["events"] == 3
    assert client.get("/v1/stats?window=5m").get_json()["events"] == 3 and stats.reads == 3


def test_the_data_version_is_unknown_until_read_and_once_its_last_read_is_stale() -> None:
    clock, reads = Clock(), iter(["4", None, "5"])
    version = DataVersion(lambda: next(reads), stale_after=1.0, clock=clock)
    version._polling = True  # polled by hand here, not by its thread
    assert version.current() is None
    version.poll_once()
    assert version.current() == "4"
    clock.now += 1.5
    assert version.current() is None  # the poller stopped reading: no answer is kept on an old version
    version.poll_once()
    assert version.current() is None  # Redis answered nothing (down, or no version yet)
    version.poll_once()
    assert version.current() == "5"


def test_the_data_version_is_polled_while_asked_for_and_not_when_idle() -> None:
    values = iter(range(1_000_000))
    version = DataVersion(lambda: str(next(values)), interval=0.001, idle_after=0.2)
    version.current()
    assert version.is_polling  # the first call started the poller
    deadline = time.monotonic() + 5
    while version.current() in (None, "0") and time.monotonic() < deadline:
        time.sleep(0.005)
    assert version.current() not in (None, "0")
    deadline = time.monotonic() + 5
    while version.is_polling and time.monotonic() < deadline:  # nobody asks: the poller ends
        time.sleep(0.05)
    assert not version.is_polling
    before = version._value
    time.sleep(0.05)
    assert version._value == before  # and nothing is read meanwhile
    version.current()
    assert version.is_polling  # asked again: polling again


class SlowStats(CountingStats):
    """Reads that take a while, long enough for other requests of the same URL to arrive meanwhile."""

    def __init__(self, *, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.started = threading.Event()

    def latest_minute(self) -> int | None:
        self.started.set()
        time.sleep(0.3)
        if self.fail:
            raise RuntimeError("the store broke")
        return super().latest_minute()


def _concurrently(client: FlaskClient, stats: SlowStats, count: int) -> list[int]:
    """`count` requests of one URL: the first, then the others while it reads the store."""
    codes: list[int] = []

    def ask() -> None:
        codes.append(client.get("/v1/stats?window=5m").status_code)

    first = threading.Thread(target=ask)
    first.start()
    assert stats.started.wait(10)
    others = [threading.Thread(target=ask) for _ in range(count - 1)]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(20)
    assert not any(thread.is_alive() for thread in [first, *others]), "a request still waits for the computing one"
    return codes


def test_requests_arriving_while_an_answer_is_computed_wait_for_it_instead_of_computing_it_again() -> None:
    stats = SlowStats()
    client = _app(stats, cache_seconds=60)
    assert _concurrently(client, stats, 5) == [200] * 5
    assert stats.reads == 1


def test_when_the_computing_request_fails_the_waiting_ones_compute_it_themselves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(answer_cache, "COMPUTING_WAIT_SECONDS", 60.0)  # only a release ends the wait in time
    stats = SlowStats(fail=True)
    client = create_app(stats=stats, edits=NoEdits(), health_checks={}, answer_cache_seconds=60).test_client()
    client.application.config["PROPAGATE_EXCEPTIONS"] = False
    codes = _concurrently(client, stats, 3)
    assert sorted(codes) == [500, 500, 500]
    stats.fail = False
    assert client.get("/v1/stats?window=5m").status_code == 200  # nothing left claimed


def test_requests_arriving_while_an_answer_is_computed_again_get_the_previous_one_at_once() -> None:
    stats = SlowStats()
    client = _app(stats, cache_seconds=0.2)
    first = client.get("/v1/stats?window=5m").get_json()
    time.sleep(0.25)  # its ttl is up: the next request computes it again, for 0.3 s
    stats.started.clear()
    answers: list[tuple[float, dict]] = []

    def ask() -> None:
        began = time.monotonic()
        body = client.get("/v1/stats?window=5m").get_json()
        answers.append((time.monotonic() - began, body))

    computing = threading.Thread(target=ask)
    computing.start()
    assert stats.started.wait(10)
    others = [threading.Thread(target=ask) for _ in range(4)]
    for thread in others:
        thread.start()
    for thread in [computing, *others]:
        thread.join(20)
    assert stats.reads == 2
    previous = [(took, body) for took, body in answers if body == first]
    assert len(previous) == 4 and all(took < 0.2 for took, _ in previous), answers  # not held for the 0.3 s read
    assert [body for _, body in answers if body != first] != [], "the computing request has the new answer"
