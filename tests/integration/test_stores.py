"""The KCL processor's adapters against the real redis-server and moto DynamoDB."""

import json

import boto3
import pytest
import redis

from kcl_app.dynamo_store import DynamoEventStore
from kcl_app.handler import BatchOutcome, counter_update, prepare
from kcl_app.redis_counters import RedisCounterStore
from tests.conftest import RECENTCHANGE
from wikitide import keys
from wikitide.errors import DependencyUnavailable
from wikitide.events import revision_key

pytestmark = pytest.mark.integration


def _prepared(limit: int | None = None):
    path = RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson"
    payloads = [line.encode() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return prepare(payloads[:limit], BatchOutcome())


def test_counting_the_same_changes_twice_counts_them_once(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = RedisCounterStore(client)
    updates = [counter_update(item) for item in _prepared()]
    assert store.apply(updates) == 1950
    snapshot = {key: client.dump(key) for key in client.keys("wt:m:*")}
    assert store.apply(updates[::3]) == 0
    assert {key: client.dump(key) for key in client.keys("wt:m:*")} == snapshot
    latest = int(client.get(keys.LATEST_MINUTE))
    assert latest == max(update.minute for update in updates)
    total = sum(int(client.hget(keys.counts_key(m), "events") or 0) for m in {u.minute for u in updates})
    assert total == 1950


def test_recent_list_keeps_the_newest_by_event_time(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    updates = [counter_update(item) for item in _prepared()]
    RedisCounterStore(client).apply(updates)
    newest = client.zrevrange(keys.recent_key(), 0, 0, withscores=True)[0]
    assert newest[1] == max(update.event_ms for update in updates)
    assert client.zcard(keys.recent_key()) == min(keys.RECENT_LIMIT, 1950)


def test_redis_down_becomes_dependency_unavailable() -> None:
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    store = RedisCounterStore(client, attempts=2, fast_retries=True)
    with pytest.raises(DependencyUnavailable):
        store.apply([counter_update(_prepared(1)[0])])


def test_dynamodb_keeps_one_item_per_key(provisioned) -> None:
    client = boto3.client("dynamodb")
    store = DynamoEventStore(client, provisioned.events_table)
    items = _prepared(60)
    store.put_changes(items)
    store.put_changes(items[10:40])
    scanned = client.scan(TableName=provisioned.events_table, Select="COUNT")["Count"]
    assert scanned == 60
    edit = next(item for item in items if item.change.is_revision)
    got = client.get_item(
        TableName=provisioned.events_table,
        Key={"pk": {"S": revision_key(edit.change.wiki, edit.change.rev_new)}},
    )["Item"]
    assert json.loads(got["doc"]["S"]) == edit.doc


def test_a_missing_table_is_a_dependency_error(local_stack) -> None:
    store = DynamoEventStore(boto3.client("dynamodb"), "no-such-table", attempts=2, fast_retries=True)
    with pytest.raises(DependencyUnavailable):
        store.put_changes(_prepared(1))
