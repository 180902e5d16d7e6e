"""The KCL processor's adapters against the real redis-server and moto DynamoDB."""

import dataclasses
import json
import threading
from collections import Counter

import boto3
import pytest
import redis

from api.dynamo_edits import DynamoEdits
from kcl_app import ledger
from kcl_app.bootstrap import build_stores
from kcl_app.dynamo_ledger import DynamoCounterLedger
from kcl_app.dynamo_store import DynamoEventStore
from kcl_app.handler import BatchOutcome, StreamRecord, contributions_of, prepare, process_batch
from kcl_app.redis_mirror import RedisMirror, page_cells, rebuild_page_calls, recent_cells
from tests.conftest import RECENTCHANGE
from wikitide import keys
from wikitide.errors import DependencyUnavailable
from wikitide.events import revision_key
from wikitide.redis_client import make_redis

pytestmark = pytest.mark.integration
SHARD = "shardId-000000000001"


def _records(limit: int | None = None, shard: str = SHARD, first: int = 10**20) -> list[StreamRecord]:
    path = RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson"
    payloads = [line.encode() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [StreamRecord(p, shard, first + i, 1_630_070_400_000 + i) for i, p in enumerate(payloads[:limit])]


def _prepared(limit: int | None = None, **kwargs):
    ready, _ = prepare(_records(limit, **kwargs), BatchOutcome())
    return ready


def _buckets(client: redis.Redis) -> dict[str, object]:
    """Every key the API reads, with its content."""
    found: dict[str, object] = {}
    for key in client.scan_iter("wt:[mp]:*"):
        found[key] = client.hgetall(key) if client.type(key) == "hash" else client.zrange(key, 0, -1, withscores=True)
    found[keys.LATEST_MINUTE] = client.get(keys.LATEST_MINUTE)
    found[keys.REJECTED] = client.hgetall(keys.REJECTED)
    return found


def test_a_key_is_held_by_the_first_record_and_its_redeliveries(provisioned) -> None:
    client = boto3.client("dynamodb")
    store = DynamoEventStore(client, provisioned.events_table)
    items = _prepared(60)
    assert len(store.claim(items)) == 60
    assert len(store.claim(items[10:40])) == 30
    assert store.claim(_prepared(60, shard="shardId-000000000002")) == []
    assert client.scan(TableName=provisioned.events_table, Select="COUNT")["Count"] == 60
    edit = next(item for item in items if item.change.is_revision)
    got = client.get_item(
        TableName=provisioned.events_table, Key={"pk": {"S": revision_key(edit.change.wiki, edit.change.rev_new)}}
    )["Item"]
    assert json.loads(got["doc"]["S"]) == edit.doc
    assert got["position"]["S"] == edit.record.position


def test_claims_cost_one_call_per_25_to_100_records(provisioned) -> None:
    client = boto3.client("dynamodb")
    calls: Counter[str] = Counter()
    client.meta.events.register("before-call.dynamodb.*", lambda model, **kwargs: calls.update([model.name]))
    store = DynamoEventStore(client, provisioned.events_table)
    assert len(store.claim(_prepared(250))) == 250
    assert calls == {"BatchGetItem": 3, "BatchWriteItem": 10}


def test_a_zombie_and_the_new_owner_claiming_the_same_batch_leave_one_holder_and_the_later_copy_a_duplicate(
    provisioned,
) -> None:
    """The race the unconditional claim write must survive (see `DynamoEventStore.claim`): a zombie reads the
    batch's keys as free and stalls before its write; meanwhile the shard's new owner claims the same records,
    then a later copy of one of them (another position on the same shard, as a source duplicate is). The zombie
    then writes. Every key must still be held by its first position, and the later copy stay a duplicate."""
    batch = _prepared(40)
    later_copy = _prepared(1, first=10**21)[0]  # the first record again, at a later sequence number
    assert later_copy.key == batch[0].key and later_copy.record.position != batch[0].record.position

    zombie_client, owner_client = boto3.client("dynamodb"), boto3.client("dynamodb")
    read_done, owner_done = threading.Event(), threading.Event()

    def stall_after_read(**kwargs) -> None:
        read_done.set()
        assert owner_done.wait(60), "the owner never finished"

    zombie_client.meta.events.register("after-call.dynamodb.BatchGetItem", stall_after_read)
    zombie = DynamoEventStore(zombie_client, provisioned.events_table)
    owner = DynamoEventStore(owner_client, provisioned.events_table)
    zombie_held: list = []
    thread = threading.Thread(target=lambda: zombie_held.extend(zombie.claim(batch)))
    thread.start()
    try:
        assert read_done.wait(60), "the zombie never read"
        owner_held = owner.claim(batch)
        assert owner.claim([later_copy]) == []
    finally:
        owner_done.set()
        thread.join(60)
    assert len(owner_held) == len(zombie_held) == len(batch)  # both count: the ledger's marks absorb the second
    assert owner.claim([later_copy]) == []  # still a duplicate after the zombie's late write
    for change in batch:
        item = owner_client.get_item(TableName=provisioned.events_table, Key={"pk": {"S": change.key}},
                                     ConsistentRead=True)["Item"]
        assert item["position"]["S"] == change.record.position


def test_the_latest_change_of_a_page_is_its_newest_claimed_change_whatever_the_order_of_claims(provisioned) -> None:
    """The API's latest change of a page (`api/dynamo_edits.py`, the events table's by-page index) is the page's
    newest change by event time, also when the newer changes were claimed first (a later batch of another
    shard, a parent shard's tail after its children)."""
    client = boto3.client("dynamodb")
    store = DynamoEventStore(client, provisioned.events_table)
    items = _prepared()
    store.claim(items[1000:])
    store.claim(items[:1000])
    changes: dict[tuple[str, str], list] = {}
    for item in items:
        changes.setdefault((item.change.wiki, item.change.title), []).append(item)
    edited_often = [page for page, docs in changes.items() if len(docs) > 1]
    assert len(edited_often) >= 20, len(edited_often)
    edits = DynamoEdits(client, provisioned.events_table)
    for wiki, title in edited_often + list(changes)[:50]:
        newest = max(changes[wiki, title], key=lambda i: (int(i.change.dt.timestamp() * 1000), i.key))
        assert edits.latest_change(wiki, title) == newest.doc, (wiki, title)
    assert edits.latest_change("enwiki", "No such page ever edited") is None


def test_the_latest_minute_is_written_once_per_newer_minute_a_process_counts(provisioned) -> None:
    from wikitide import cells as layout

    client = boto3.client("dynamodb")
    latest_writes: list[str] = []

    def count(params: dict, **_: object) -> None:
        if params.get("Key") == layout.LATEST_KEY:
            latest_writes.append(params["ExpressionAttributeValues"][":minute"]["N"])

    client.meta.events.register("provide-client-params.dynamodb.UpdateItem", count)
    items = _prepared(60)
    minutes = sorted({keys.epoch_minute(item.change.dt) for item in items})
    counters = DynamoCounterLedger(client, provisioned.counters_table)
    for start in range(0, len(items), 10):
        counters.apply(SHARD, [c for item in items[start : start + 10] for c in contributions_of(item)])
    stored = client.get_item(TableName=provisioned.counters_table, Key=layout.LATEST_KEY, ConsistentRead=True)
    assert int(stored["Item"][layout.LATEST_MINUTE]["N"]) == minutes[-1]
    # One write each time a batch's newest minute passed what this process had stored, not one per batch.
    assert 1 <= len(latest_writes) <= len(minutes) < 6, (latest_writes, minutes)
    assert [int(m) for m in latest_writes] == sorted(int(m) for m in latest_writes)
    # A new process (a restarted worker) writes once, and the stored minute never goes back.
    DynamoCounterLedger(client, provisioned.counters_table).apply(SHARD, list(contributions_of(items[0])))
    stored = client.get_item(TableName=provisioned.counters_table, Key=layout.LATEST_KEY, ConsistentRead=True)
    assert int(stored["Item"][layout.LATEST_MINUTE]["N"]) == minutes[-1]


def test_the_ledger_counts_each_record_once_however_often_and_however_raced(provisioned) -> None:
    counters = DynamoCounterLedger(boto3.client("dynamodb"), provisioned.counters_table)
    items = _prepared(300)
    contributions = [c for item in items for c in contributions_of(item)]

    def worker(batch_size: int) -> None:
        """A worker reading the shard from the same checkpoint, in its own batches, as a zombie and the new
        lease owner do."""
        for start in range(0, len(items), batch_size):
            counters.apply(SHARD, [c for item in items[start : start + batch_size] for c in contributions_of(item)])

    threads = [threading.Thread(target=worker, args=(size,)) for size in (300, 100, 70, 33)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    states = counters.apply(SHARD, contributions)
    totals = Counter()
    for state in states:
        if state.cell.scope == ledger.TOTAL:
            totals.update(state.values)
    assert totals["events"] == 300
    assert sum(s.values["events"] for s in states if s.cell.scope.startswith("w:")) == 300


def test_redis_is_rebuilt_from_dynamodb_to_the_same_numbers(provisioned, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stores, rebuilder = build_stores(boto3.client("dynamodb"), client, provisioned)
    records = _records()
    bad = StreamRecord(b"{oops", SHARD, records[-1].sequence + 1, records[-1].arrival_ms)
    process_batch(records[:1200], stores)
    published = int(client.get(keys.DATA_VERSION) or 0)
    process_batch(records[900:] + [bad], stores)
    before = _buckets(client)
    assert sum(int(v["events"]) for k, v in before.items() if k.startswith("wt:m:") and ":w:" not in k) == 1950
    assert before[keys.REJECTED] == {"not_json": "1"}
    # Every publish moves the version the API's kept answers are tied to.
    assert published >= 1 and int(client.get(keys.DATA_VERSION) or 0) > published

    client.flushdb()
    assert rebuilder.rebuild() is not None
    assert _buckets(client) == before
    assert client.exists(keys.READY) and int(client.get(keys.DATA_VERSION) or 0) >= 1
    assert rebuilder.rebuild() == 0  # merging the same states again moves nothing


def test_a_rebuild_beside_live_processing_converges(provisioned, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stores, rebuilder = build_stores(boto3.client("dynamodb"), client, provisioned)
    records = _records()
    process_batch(records[:1000], stores)
    client.flushdb()
    worker = threading.Thread(target=process_batch, args=(records[1000:], stores))
    worker.start()
    rebuilder.rebuild()
    worker.join()
    minutes = [k for k in client.scan_iter("wt:m:*") if ":w:" not in k]
    assert sum(int(client.hget(k, "events")) for k in minutes) == 1950
    revisions = sum(int(client.hget(k, "edit") or 0) + int(client.hget(k, "new") or 0) for k in minutes)
    page_edits = sum(score for k in client.scan_iter("wt:p:*") if ":w:" not in k
                     for _, score in client.zrange(k, 0, -1, withscores=True))
    assert revisions and page_edits == revisions


def test_a_rebuild_counts_the_page_edits_that_live_publishes_into_the_empty_redis_did_not(
    provisioned, redis_url: str
) -> None:
    """Redis empties mid-stream. Batches published before the rebuild start their (minute, shard) page cells again
    from their first edit, and the rebuild adds what came before it; cells they did not touch get every edit up
    to the ledger's mark, not the claims of a batch whose counting failed (its redelivery counts them); old
    batches redelivered count nothing. The result is what one publish of the whole stream into an empty Redis
    counts."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stores, rebuilder = build_stores(boto3.client("dynamodb"), client, provisioned)
    ordered = dataclasses.replace(stores, mirror=RedisMirror(client))  # no background rebuild: this test orders it
    records = _records()
    for start in range(0, 1000, 100):
        process_batch(records[start : start + 100], ordered)
    client.flushdb()
    # The recording's first minute holds records 0-1387, its second 1388-1949.
    for start in range(1000, 1300, 100):  # the first minute's cell starts again at 1000: the rebuild adds 0-999
        process_batch(records[start : start + 100], ordered)
    with pytest.raises(DependencyUnavailable):  # counted in DynamoDB, not in Redis: the second minute's cell is new
        process_batch(records[1300:1450], dataclasses.replace(ordered, mirror=_Unavailable()))
    with pytest.raises(DependencyUnavailable):  # claims stored, counts not: above the second minute's mark
        process_batch(records[1450:1550], dataclasses.replace(ordered, ledger=_Unavailable()))
    assert rebuilder.rebuild()
    for start in range(1300, len(records), 100):  # redelivered from the checkpoint
        process_batch(records[start : start + 100], ordered)
    process_batch(records[:1000], ordered)  # old batches redelivered: counted already
    rebuilt = _buckets(client)
    client.flushdb()
    process_batch(records, ordered)
    assert rebuilt == _buckets(client)
    assert any(key.startswith("wt:p:") for key in rebuilt)


def test_a_rebuild_stopped_half_way_is_finished_by_the_next_and_counts_each_edit_once(
    provisioned, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    dynamodb = boto3.client("dynamodb")
    stores, rebuilder = build_stores(dynamodb, client, provisioned)
    process_batch(_records(), dataclasses.replace(stores, mirror=RedisMirror(client)))
    reference = _buckets(client)
    client.flushdb()
    states = recent_cells(DynamoCounterLedger(dynamodb, provisioned.counters_table).scan())
    edits = DynamoEventStore(dynamodb, provisioned.events_table).scan_page_edits()
    calls = [call for cell in page_cells(states, edits) for call in rebuild_page_calls(*cell)]
    assert len(calls) >= 3  # the first minute's cell is cut in two chunks or more
    mirror = RedisMirror(client)
    assert mirror.rebuild_pages(calls[:1])  # a rebuild that stopped after one chunk
    assert mirror.rebuild_pages(calls[:1]) == 0  # that chunk again (a second rebuild beside it) counts nothing
    assert rebuilder.rebuild()
    assert _buckets(client) == reference
    assert rebuilder.rebuild() == 0


class _Unavailable:
    """A counter ledger or a mirror that is down."""

    def apply(self, shard: str, contributions: object) -> list:
        raise DependencyUnavailable("DynamoDB is down (test)")

    def publish(self, states: object, changes: object) -> None:
        raise DependencyUnavailable("Redis is down (test)")


def test_redis_down_becomes_dependency_unavailable() -> None:
    # The processor's own client (one try per command): redis-py's default would retry 10 times with backoff.
    mirror = RedisMirror(make_redis("redis://127.0.0.1:1/0", connect_timeout=0.2), attempts=2, fast_retries=True)
    with pytest.raises(DependencyUnavailable):
        mirror.publish([], _prepared(1))


def test_a_missing_table_is_a_dependency_error(local_stack) -> None:
    store = DynamoEventStore(boto3.client("dynamodb"), "no-such-table", attempts=2, fast_retries=True)
    with pytest.raises(DependencyUnavailable):
        store.claim(_prepared(1))


def test_one_rebuild_at_a_time_across_the_fleet(provisioned, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    _, rebuilder = build_stores(boto3.client("dynamodb"), client, provisioned)
    other = client.lock(keys.REBUILD_LOCK, timeout=60)
    assert other.acquire(blocking=False)
    assert rebuilder.rebuild() is None
    assert not client.exists(keys.READY)
    other.release()
    assert rebuilder.rebuild() == 0
    assert client.exists(keys.READY)
    assert not client.exists(keys.REBUILD_LOCK)
