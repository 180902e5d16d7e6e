"""The API over a real redis-server, populated exactly as the KCL processor writes it (`wikitide.keys`).

Needs the `redis_url` fixture: the URL of a running, empty redis-server (the database is flushed per test).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from redis.backoff import NoBackoff
from redis.retry import Retry

from api import create_app
from api.health import redis_check
from api.redis_stats import RedisStats
from wikitide import keys
from wikitide.settings import Settings

pytestmark = pytest.mark.integration

LATEST_DT = datetime(2024, 5, 26, 15, 40, 30, tzinfo=UTC)
LATEST = keys.epoch_minute(LATEST_DT)


class NoEdits:
    def get_edit(self, wiki: str, rev_id: int) -> dict[str, Any] | None:
        return None


def record(
    r: redis.Redis,
    *,
    wiki: str = "enwiki",
    title: str = "Page",
    type: str = "edit",
    minutes_ago: float = 0,
    bot: bool = False,
    byte_delta: int | None = 10,
    synthetic: bool = False,
    rev: int = 1,
) -> dict[str, Any]:
    """Write one event as the processor does: counters, page sets, latest minute, recent feed."""
    dt = LATEST_DT - timedelta(minutes=minutes_ago)
    minute = keys.epoch_minute(dt)
    bucket = type if type in ("edit", "new", "log", "categorize") else "other"
    event = {
        "key": f"{wiki}#rev#{rev}",
        "wiki": wiki,
        "type": type,
        "title": title,
        "dt": dt.isoformat().replace("+00:00", "Z"),
        "user": "Bot" if bot else "Someone",
        "bot": bot,
        "byte_delta": byte_delta,
        "rev_new": rev,
        "synthetic": synthetic,
    }
    pipe = r.pipeline()
    for counts in (keys.counts_key(minute), keys.counts_key(minute, wiki)):
        pipe.hincrby(counts, "events", 1)
        pipe.hincrby(counts, bucket, 1)
        pipe.hincrby(counts, "bot_events" if bot else "human_events", 1)
        if byte_delta is not None and byte_delta >= 0:
            pipe.hincrby(counts, "bytes_added", byte_delta)
        elif byte_delta is not None:
            pipe.hincrby(counts, "bytes_removed", -byte_delta)
        if synthetic:
            pipe.hincrby(counts, "synthetic_events", 1)
    if type in ("edit", "new"):
        member = keys.page_member(wiki, title)
        pipe.zincrby(keys.pages_key(minute), 1, member)
        pipe.zincrby(keys.pages_key(minute, wiki), 1, member)
    score = int(dt.timestamp() * 1000)
    for recent in (keys.recent_key(), keys.recent_key(wiki)):
        pipe.zadd(recent, {keys.recent_member(event["key"], json.dumps(event, sort_keys=True)): score})
    pipe.execute()
    latest = r.get(keys.LATEST_MINUTE)
    if latest is None or int(latest) < minute:
        r.set(keys.LATEST_MINUTE, minute)
    return event


@pytest.fixture
def store(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=2, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def api(store: redis.Redis) -> FlaskClient:
    app = create_app(stats=RedisStats(store), edits=NoEdits(), health_checks={"redis": redis_check(store)})
    return app.test_client()


def stats(api: FlaskClient, window: str, wiki: str | None = None) -> dict[str, Any]:
    query = f"window={window}" + (f"&wiki={wiki}" if wiki else "")
    response = api.get(f"/v1/stats?{query}")
    assert response.status_code == 200
    body: dict[str, Any] = response.get_json()
    return body


def test_window_boundaries_follow_the_latest_minute(store: redis.Redis, api: FlaskClient) -> None:
    for minutes_ago in (0, 4, 5, 59, 60, 1439, 1440):
        record(store, minutes_ago=minutes_ago, rev=minutes_ago + 1)

    events = {window: stats(api, window)["events"] for window in ("1m", "5m", "1h", "24h")}

    # 5 minutes back is the sixth bucket: outside 5m, inside 1h and 24h.
    assert events == {"1m": 1, "5m": 2, "1h": 4, "24h": 6}


def test_an_event_five_minutes_before_latest_is_in_1h_and_24h_only(
    store: redis.Redis, api: FlaskClient
) -> None:
    record(store, minutes_ago=0, type="log")
    record(store, minutes_ago=5, type="new")

    assert stats(api, "5m")["by_type"]["new"] == 0
    assert stats(api, "1h")["by_type"]["new"] == 1
    assert stats(api, "24h")["by_type"]["new"] == 1


def test_stats_sum_every_field(store: redis.Redis, api: FlaskClient) -> None:
    record(store, type="edit", byte_delta=120, bot=True)
    record(store, type="new", byte_delta=-30, minutes_ago=1, synthetic=True)
    record(store, type="categorize", byte_delta=None, minutes_ago=2)
    record(store, type="142", byte_delta=None, minutes_ago=3)

    body = stats(api, "5m")

    assert body == {
        "window": "5m",
        "wiki": None,
        "events": 4,
        "by_type": {"edit": 1, "new": 1, "log": 0, "categorize": 1, "other": 1},
        "bot_events": 1,
        "human_events": 3,
        "bytes_added": 120,
        "bytes_removed": 30,
        "synthetic_events": 1,
        "as_of": "2024-05-26T15:40:00Z",
    }


def test_wiki_stats_use_the_overall_latest_minute(store: redis.Redis, api: FlaskClient) -> None:
    record(store, wiki="enwiki", minutes_ago=0)
    record(store, wiki="dewiki", minutes_ago=3, byte_delta=7)

    assert stats(api, "1m", "dewiki")["events"] == 0
    five = stats(api, "5m", "dewiki")
    assert (five["wiki"], five["events"], five["bytes_added"]) == ("dewiki", 1, 7)
    assert five["as_of"] == "2024-05-26T15:40:00Z"
    assert stats(api, "5m", "frwiki")["events"] == 0


def test_empty_redis_gives_zeros_and_no_as_of(api: FlaskClient) -> None:
    body = stats(api, "24h")
    assert body["events"] == 0
    assert body["as_of"] is None
    assert api.get("/v1/pages/top?window=24h").get_json()["pages"] == []
    assert api.get("/v1/edits/recent").get_json() == {"edits": [], "next": None}


def test_top_pages_sum_minutes_and_break_ties_by_title_then_wiki(
    store: redis.Redis, api: FlaskClient
) -> None:
    for rev, (wiki, title, minutes_ago) in enumerate(
        [
            ("frwiki", "B", 0),
            ("frwiki", "B", 2),
            ("frwiki", "B", 4),
            ("zhwiki", "A", 0),
            ("zhwiki", "A", 1),
            ("enwiki", "A", 3),
            ("enwiki", "A", 4),
            ("enwiki", "C", 0),
            ("enwiki", "C", 30),
            ("enwiki", "C", 31),
        ]
    ):
        record(store, wiki=wiki, title=title, minutes_ago=minutes_ago, rev=rev)
    record(store, wiki="enwiki", title="Logged", type="log")

    five = api.get("/v1/pages/top?window=5m").get_json()
    hour = api.get("/v1/pages/top?window=1h&limit=2").get_json()

    assert five == {
        "window": "5m",
        "wiki": None,
        "pages": [
            {"wiki": "frwiki", "title": "B", "edits": 3},
            {"wiki": "enwiki", "title": "A", "edits": 2},
            {"wiki": "zhwiki", "title": "A", "edits": 2},
            {"wiki": "enwiki", "title": "C", "edits": 1},
        ],
    }
    assert hour["pages"] == [
        {"wiki": "frwiki", "title": "B", "edits": 3},
        {"wiki": "enwiki", "title": "C", "edits": 3},
    ]


def test_top_pages_limit_cuts_inside_a_tie_by_title_not_by_redis_order(
    store: redis.Redis, api: FlaskClient
) -> None:
    # Redis orders equal scores by member ("wiki<TAB>title"), which would put zhwiki first.
    for rev, (wiki, title) in enumerate([("zhwiki", "A"), ("enwiki", "B"), ("frwiki", "A"), ("dewiki", "C")]):
        record(store, wiki=wiki, title=title, rev=rev)
        record(store, wiki=wiki, title=title, rev=rev + 100, minutes_ago=1)
    record(store, wiki="enwiki", title="Z", rev=999)

    pages = api.get("/v1/pages/top?window=5m&limit=1").get_json()["pages"]
    three = api.get("/v1/pages/top?window=5m&limit=3").get_json()["pages"]

    assert pages == [{"wiki": "frwiki", "title": "A", "edits": 2}]
    assert [(p["wiki"], p["title"]) for p in three] == [("frwiki", "A"), ("zhwiki", "A"), ("enwiki", "B")]


def test_top_pages_for_one_wiki_and_no_scratch_key_left(store: redis.Redis, api: FlaskClient) -> None:
    record(store, wiki="enwiki", title="Big", rev=1)
    record(store, wiki="enwiki", title="Big", rev=2)
    record(store, wiki="dewiki", title="Klein", rev=3)

    body = api.get("/v1/pages/top?window=1m&wiki=dewiki").get_json()

    assert body == {
        "window": "1m",
        "wiki": "dewiki",
        "pages": [{"wiki": "dewiki", "title": "Klein", "edits": 1}],
    }
    assert store.keys(f"{keys.PREFIX}:api:*") == []


def test_recent_edits_are_newest_event_time_first(store: redis.Redis, api: FlaskClient) -> None:
    middle = record(store, wiki="enwiki", title="Middle", minutes_ago=2, rev=2)
    newest = record(store, wiki="dewiki", title="Newest", minutes_ago=0, rev=3)
    oldest = record(store, wiki="enwiki", title="Oldest", minutes_ago=10, rev=1)

    assert api.get("/v1/edits/recent").get_json() == {"edits": [newest, middle, oldest], "next": None}
    assert api.get("/v1/edits/recent?limit=2").get_json()["edits"] == [newest, middle]
    assert api.get("/v1/edits/recent?wiki=enwiki").get_json()["edits"] == [middle, oldest]


@pytest.mark.parametrize(
    "url",
    [
        "/v1/stats?window=10m",
        "/v1/stats",
        "/v1/pages/top?window=5m&limit=101",
        "/v1/pages/top?window=5m&wiki=bad%20wiki",
        "/v1/edits/recent?limit=501",
        "/v1/edits/enwiki/0",
    ],
)
def test_bad_parameters_are_400_and_touch_nothing(store: redis.Redis, api: FlaskClient, url: str) -> None:
    record(store)
    response = api.get(url)
    assert response.status_code == 400
    assert response.get_json()["error"]


def test_health_pings_the_real_redis(api: FlaskClient) -> None:
    response = api.get("/health")
    body = response.get_json()
    assert response.status_code == 200
    assert body["dependencies"]["redis"]["ok"] is True
    assert body["dependencies"]["redis"]["latency_ms"] >= 0


def test_unreachable_redis_is_503_and_degraded_health() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    client = create_app(stats=RedisStats(dead), edits=NoEdits(), health_checks={"redis": redis_check(dead)})
    api = client.test_client()

    stats_response = api.get("/v1/stats?window=1m")
    health_response = api.get("/health")

    assert stats_response.status_code == 503
    assert "redis" in stats_response.get_json()["error"]
    assert health_response.status_code == 503
    assert health_response.get_json()["dependencies"]["redis"]["ok"] is False


def test_settings_redis_url_builds_the_real_reader(store: redis.Redis, redis_url: str) -> None:
    record(store, wiki="enwiki", byte_delta=5)
    store.set(keys.READY, 1)
    settings = Settings(
        stack_name="unused",
        region="us-east-1",
        redis_url=redis_url,
        kinesis_endpoint=None,
        dynamodb_endpoint=None,
        contact="",
        fast_retries=True,
    )
    api = create_app(settings, edits=NoEdits(), health_checks={}).test_client()

    assert api.get("/v1/stats?window=1m&wiki=enwiki").get_json()["bytes_added"] == 5
