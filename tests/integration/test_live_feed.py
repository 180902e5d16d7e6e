"""The live feed on a real redis-server: the processor's own Redis path (`RedisMirror.publish`) appends each
counted change once, redelivered or not, and `/v1/stream` serves it from that Redis, resuming after an id."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from api import create_app
from api.feed_log import RedisFeedLog
from api.ports import FeedBounds
from kcl_app.handler import BatchOutcome, StreamRecord, prepare
from kcl_app.redis_mirror import RedisMirror
from tests.unit.test_api_routes import FakeEdits, FakeStats
from tests.unit.test_api_stream import Frames
from wikitide import keys

pytestmark = pytest.mark.integration

RECORDING = Path(__file__).resolve().parents[3] / "shared" / "data" / "recentchange" / "ndjson" / (
    "kirajano_recentchange_2021-08-27.ndjson")


@pytest.fixture(scope="module")
def client(own_redis: redis.Redis) -> redis.Redis:
    return own_redis


def recorded_batch(count: int) -> list:
    lines = RECORDING.read_bytes().splitlines()[:count]
    records = [StreamRecord(line, "shardId-000000000000", 1000 + i, 1_630_070_000_000) for i, line in enumerate(lines)]
    ready, _ = prepare(records, BatchOutcome())
    return ready


def test_each_counted_change_enters_the_feed_once_and_the_stream_resumes_after_an_id(client: redis.Redis) -> None:
    client.flushdb()
    changes = recorded_batch(300)
    assert len(changes) > 200
    mirror = RedisMirror(client)
    mirror.publish([], changes[:150])
    mirror.publish([], changes)  # a redelivery of the first half with the rest
    feed = RedisFeedLog(client)
    entries = feed.read("0-0", 1000)
    assert [entry.doc["key"] for entry in entries] == [item.key for item in changes]
    assert client.xlen(keys.CHANGES_STREAM) == len(changes)

    app = create_app(stats=FakeStats(), edits=FakeEdits(), health_checks={}, feed=feed)
    middle = entries[100].id
    response = app.test_client().get("/v1/stream?type=edit", headers={"Last-Event-ID": middle}, buffered=False)
    assert response.status_code == 200
    frames = Frames(iter(chunk.decode() for chunk in response.response))
    wanted = [e for e in entries[101:] if e.doc["type"] == "edit"]
    got = [frames.next_change() for _ in wanted]
    assert [(entry_id, doc["key"]) for entry_id, doc in got] == [(e.id, e.doc["key"]) for e in wanted]
    # New changes after the client caught up arrive live through the fan-out.
    client.delete(*[keys.change_seen_key(item.key) for item in changes[:3]])
    mirror.publish([], changes[:3])
    live = [frames.next_change() for item in changes[:3] if item.doc["type"] == "edit"]
    assert [doc["key"] for _, doc in live] == [item.key for item in changes[:3] if item.doc["type"] == "edit"]
    assert all(json.loads(json.dumps(doc)) == doc for _, doc in live)
    response.close()


def test_the_feed_is_capped(client: redis.Redis) -> None:
    client.flushdb()
    from kcl_app import change_feed

    changes = recorded_batch(600)
    script = client.register_script(change_feed.APPEND)
    for call_keys, args in change_feed.append_calls(changes, maxlen=100):
        script(keys=call_keys, args=args)
    # MAXLEN ~ trims whole nodes: at least 100 are kept, far fewer than were added.
    assert 100 <= client.xlen(keys.CHANGES_STREAM) < len(changes)
    kept = RedisFeedLog(client).bounds()
    assert kept.newest == client.xrevrange(keys.CHANGES_STREAM, count=1)[0][0]
    assert kept.oldest == client.xrange(keys.CHANGES_STREAM, count=1)[0][0]
    assert kept.is_trimmed


def test_a_feed_that_never_reached_its_cap_has_lost_nothing(client: redis.Redis) -> None:
    client.flushdb()
    feed = RedisFeedLog(client)
    assert feed.bounds() == FeedBounds(None, None, False)
    mirror = RedisMirror(client)
    mirror.publish([], recorded_batch(20))
    kept = feed.bounds()
    assert kept.oldest is not None and not kept.is_trimmed


def test_rate_limits_are_counted_in_redis_across_processes(client: redis.Redis) -> None:
    """Two apps (two workers, or two API tasks) share one count per client through Redis."""
    from api.limits import RateLimits, redis_storage

    client.flushdb()
    port = client.connection_pool.connection_kwargs["port"]
    uri, options = redis_storage(f"redis://127.0.0.1:{port}/0", None, None)
    limits = RateLimits(queries="3/minute", storage_uri=uri, storage_options=options)
    apps = [create_app(stats=FakeStats(), edits=FakeEdits(), health_checks={}, rate_limits=limits).test_client()
            for _ in range(2)]
    codes = [apps[i % 2].get("/v1/stats?window=1h").status_code for i in range(4)]
    assert codes == [200, 200, 200, 429]
    assert client.keys("LIMITS:LIMITER/wt:limits/127.0.0.1/api_v1.stats/*")


def _limited_apps(client: redis.Redis, rate: str, count: int) -> list:  # type: ignore[type-arg]
    from api.limits import RateLimits, redis_storage

    port = client.connection_pool.connection_kwargs["port"]
    uri, options = redis_storage(f"redis://127.0.0.1:{port}/0", None, None)
    limits = RateLimits(queries=rate, storage_uri=uri, storage_options=options)
    return [create_app(stats=FakeStats(), edits=FakeEdits(), health_checks={}, rate_limits=limits).test_client()
            for _ in range(count)]


def test_far_from_its_limit_a_client_costs_a_round_trip_per_process_every_share_interval(
    client: redis.Redis,
) -> None:
    from api.limits import SharedRedisStorage

    client.flushdb()
    (api,) = _limited_apps(client, "1000/minute", 1)
    api.get("/v1/stats?window=1h")  # loads the script and opens the window
    before = _calls(client).get("evalsha", 0)
    started = time.monotonic()
    answers = [api.get("/v1/stats?window=1h") for _ in range(5)]
    quick = time.monotonic() - started < SharedRedisStorage.SHARE_SECONDS
    trips = _calls(client).get("evalsha", 0) - before
    assert [a.status_code for a in answers] == [200] * 5
    # The headers count this process's own hits at once, sent or not.
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["998", "997", "996", "995", "994"]
    if quick:  # five requests within one interval (a slow machine may take longer: then more trips, still exact)
        assert trips == 0
    time.sleep(SharedRedisStorage.SHARE_SECONDS * 1.5)
    api.get("/v1/stats?window=1h")  # the next hit sends the five counted meanwhile with its own
    assert int(client.get(next(iter(client.scan_iter("LIMITS:*"))))) == 7


def test_near_its_limit_a_client_is_counted_exactly_across_processes(client: redis.Redis) -> None:
    """Two processes (up to 1 / LOCAL_SHARE of them) let through exactly the limit, however quickly hits come."""
    client.flushdb()
    apps = _limited_apps(client, "40/minute", 2)
    before = _calls(client).get("evalsha", 0)
    codes = [apps[i % 2].get("/v1/stats?window=1h").status_code for i in range(60)]
    trips = _calls(client).get("evalsha", 0) - before
    assert codes.count(200) == 40 and codes[-1] == 429, codes
    # Refused hits past the limit need no trip once a process has read a count past it; the first hits far from
    # the limit were counted in memory.
    assert trips < 60, trips
    print(f"\n60 hits of a 40/minute limit from two processes: 40 let through, {trips} round trips")


def _calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def test_near_its_limit_a_request_costs_one_redis_round_trip_and_its_headers_say_what_it_counted(
    client: redis.Redis,
) -> None:
    """Near the limit (a limit of 3: every hit is past a quarter of it) each hit is counted in Redis, and the count
    and the window's end come back from the increment; the headers are made from them, not from a GET and a TTL
    after it."""
    from api.limits import RateLimits, redis_storage

    client.flushdb()
    port = client.connection_pool.connection_kwargs["port"]
    uri, options = redis_storage(f"redis://127.0.0.1:{port}/0", None, None)
    api = create_app(stats=FakeStats(), edits=FakeEdits(), health_checks={},
                     rate_limits=RateLimits(queries="3/minute", storage_uri=uri, storage_options=options)).test_client()
    api.get("/v1/stats?window=1h")  # the first request also loads the scripts
    client.flushdb()
    before = _calls(client)
    answers = [api.get("/v1/stats?window=1h") for _ in range(4)]
    after = _calls(client)
    made = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
    made.pop("info", None)
    # Commands a script runs are counted too: INCRBY, EXPIRE (once, opening the window) and PTTL, inside EVALSHA.
    assert made.pop("evalsha") == 4 and set(made) <= {"incrby", "expire", "pttl"}, made
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    window_end = client.pttl(next(iter(client.scan_iter("LIMITS:*")))) / 1000 + time.time()
    for answer in answers[:3]:
        assert abs(int(answer.headers["X-RateLimit-Reset"]) - window_end) <= 1.5
    # Flask-Limiter puts the reset a second past the window's end (`RequestLimit.reset_at`).
    assert 1 <= int(answers[3].headers["Retry-After"]) <= 61
