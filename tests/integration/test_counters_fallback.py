"""Redis is a read model: the API gives the same answers from DynamoDB while Redis is empty or down, and
a rebuild from DynamoDB restores Redis to those numbers. Real moto, redis-server and processor stores."""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from datetime import datetime
from urllib.parse import quote

import boto3
import pytest
import redis
from flask.testing import FlaskClient

from api import create_app
from kcl_app.bootstrap import build_stores
from kcl_app.handler import StreamRecord, process_batch
from tests.conftest import RECENTCHANGE
from wikitide import keys
from wikitide.settings import Settings

pytestmark = pytest.mark.integration

QUERIES = [
    "/v1/stats?window=1m",
    "/v1/stats?window=1h",
    "/v1/stats?window=24h",
    "/v1/stats?window=24h&wiki=enwiki",
    "/v1/pages/top?window=24h&limit=25",
    "/v1/pages/top?window=5m&limit=10&wiki=wikidatawiki",
]


def _records() -> list[StreamRecord]:
    path = RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson"
    payloads = [line.encode() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [StreamRecord(p, "shardId-000000000000", 5000 + i, 1_630_070_400_000 + i) for i, p in enumerate(payloads)]


def _api(redis_url: str, stack_name: str) -> FlaskClient:
    settings = Settings.from_env()
    settings = Settings(stack_name=stack_name, region=settings.region, redis_url=redis_url,
                        kinesis_endpoint=settings.kinesis_endpoint, dynamodb_endpoint=settings.dynamodb_endpoint,
                        contact="", fast_retries=True)
    return create_app(settings, health_checks={}).test_client()


def _answers(redis_url: str, stack_name: str) -> dict[str, object]:
    api = _api(redis_url, stack_name)
    answers = {}
    for query in QUERIES:
        # On a busy machine moto can miss the API's DynamoDB read timeout, and the API then answers 503, as
        # documented. A client asks again: five tries, and the answer must then be complete.
        for _ in range(5):
            response = api.get(query)
            if response.status_code != 503:
                break
            time.sleep(2)
        assert response.status_code == 200, (query, response.get_json())
        answers[query] = response.get_json()
    return answers


def _dead_redis_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{probe.getsockname()[1]}/0"


def test_the_api_answers_the_same_from_redis_from_dynamodb_and_after_a_rebuild(provisioned, redis_url: str) -> None:
    stack_name = provisioned.stream_name.removesuffix("-changes")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stores, rebuilder = build_stores(boto3.client("dynamodb"), client, provisioned)
    records = _records()
    process_batch(records[:1000], stores)
    process_batch(records[700:], stores)
    rebuilder.rebuild()
    from_redis = _answers(redis_url, stack_name)
    assert from_redis["/v1/stats?window=24h"]["events"] == 1950
    assert len(from_redis["/v1/pages/top?window=24h&limit=25"]["pages"]) == 25

    client.flushdb()
    assert _answers(redis_url, stack_name) == from_redis
    assert _answers(_dead_redis_url(), stack_name) == from_redis

    rebuilder.rebuild()
    assert client.exists(keys.READY)
    assert _answers(redis_url, stack_name) == from_redis


def test_the_latest_change_of_each_page_is_served(provisioned, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stores, _ = build_stores(boto3.client("dynamodb"), client, provisioned)
    records = _records()
    process_batch(records[900:], stores)
    process_batch(records[:900], stores)
    newest: dict[tuple[str, str], str] = {}
    for record in records:
        event = json.loads(record.data)
        page = (event["wiki"], event["title"])
        newest[page] = max(newest.get(page, ""), event["meta"]["dt"][:19])
    api = _api(redis_url, provisioned.stream_name.removesuffix("-changes"))
    busiest = sorted(newest, key=lambda page: sum(1 for r in records if page[1].encode() in r.data))[-5:]
    for wiki, title in busiest:
        response = api.get("/v1/pages/latest", query_string={"wiki": wiki, "title": title})
        assert response.status_code == 200
        assert response.get_json()["dt"][:19] == newest[(wiki, title)]
    assert api.get("/v1/pages/latest", query_string={"wiki": "enwiki", "title": "No such page"}).status_code == 404


def _feed(api: FlaskClient, query: str, *, pages: int = 200) -> list[dict]:
    """Every change `/v1/edits/recent?<query>` pages through, following `next` to its end."""
    edits: list[dict] = []
    cursor = None
    for _ in range(pages):
        url = f"/v1/edits/recent?{query}" + (f"&cursor={cursor}" if cursor else "")
        for _ in range(5):  # a busy machine's moto can miss the read timeout: a 503, and the client asks again
            response = api.get(url)
            if response.status_code != 503:
                break
            time.sleep(2)
        assert response.status_code == 200, (url, response.get_json())
        body = response.get_json()
        edits += body["edits"]
        cursor = body["next"]
        if cursor is None:
            return edits
    raise AssertionError(f"{query}: still paging after {pages} pages")


def _newest_first(records: list[StreamRecord]) -> list[str]:
    """The de-duplication keys of the recording's distinct changes in feed order, from the JSON alone."""
    positions = {}
    for record in records:
        event = json.loads(record.data)
        revision = (event.get("revision") or {}).get("new")
        if event["type"] in ("edit", "new") and revision is not None:
            key = f"{event['wiki']}#rev#{revision}"
        elif event.get("id") is not None:
            key = f"{event['wiki']}#rc#{event['id']}"
        else:
            key = f"meta#{event['meta']['id']}"
        ms = int(datetime.fromisoformat(event["meta"]["dt"].replace("Z", "+00:00")).timestamp() * 1000)
        positions[key] = (ms, key)
    return [key for _, key in sorted(positions.values(), reverse=True)]


def test_recent_changes_and_page_views_come_from_dynamodb_while_redis_is_down(provisioned, redis_url: str) -> None:
    stack_name = provisioned.stream_name.removesuffix("-changes")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stores, rebuilder = build_stores(boto3.client("dynamodb"), client, provisioned)
    records = _records()
    process_batch(records[:1200], stores)
    process_batch(records[1000:], stores)
    rebuilder.rebuild()
    redis_api, dynamodb_api = _api(redis_url, stack_name), _api(_dead_redis_url(), stack_name)
    everything = _newest_first(records)
    assert len(everything) == 1950

    from_dynamodb = _feed(dynamodb_api, "limit=100")
    assert [doc["key"] for doc in from_dynamodb] == everything
    from_redis = _feed(redis_api, "limit=100")
    assert [doc["key"] for doc in from_redis] == everything[: keys.RECENT_LIMIT]
    assert from_redis == from_dynamodb[: keys.RECENT_LIMIT]
    for query in ("wiki=enwiki&limit=7", "type=edit&editor=human&limit=50", "namespace=0&min_bytes=100"):
        filtered = _feed(redis_api, query)
        assert filtered, query
        assert filtered == _feed(dynamodb_api, query)[: len(filtered)], query

    busiest = Counter((doc["wiki"], doc["title"]) for doc in from_dynamodb if doc["type"] in ("edit", "new"))
    for (wiki, title), _ in busiest.most_common(3):
        path = f"/v1/pages/{wiki}/{quote(title.replace(' ', '_'), safe='')}?limit=5"
        answer = redis_api.get(path).get_json()
        assert answer["edits"]["24h"] == busiest[(wiki, title)]
        page_keys = [doc["key"] for doc in from_dynamodb if (doc["wiki"], doc["title"]) == (wiki, title)][:5]
        assert [doc["key"] for doc in answer["changes"]] == page_keys
        assert answer["latest_change"]["key"] == page_keys[0]
        assert dynamodb_api.get(path).get_json() == answer
