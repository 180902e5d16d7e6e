"""Aggregated records through the real MultiLangDaemon (KCL 3.1.3): the producer's writer packs events per shard,
the KCL hands each event to the processors on its own, each counted once, a hostile event inside an aggregate is a
dead letter on its own, copies are kept out; and an aggregate whose events hash into different shards (what a
producer with an out-of-date shard map would write) is dropped whole by the KCL, which is why the writer checks
where each aggregate landed. Expected values are computed from the source events."""

from __future__ import annotations

import json
import re
from pathlib import Path

import boto3
import pytest
import redis

from kcl_app import ledger
from producer.batcher import Entry
from producer.kinesis_writer import make_writer
from tests.conftest import RECENTCHANGE
from tests.iam_grants import CallRecorder, grants, not_granted
from tests.integration.test_poison_batch import _pk
from tests.integration.test_processor_faults import RedisServer, _wait_for
from wikitide.aggregation import Aggregate, hash_key
from wikitide.localstack.services import CLIENT_NICE, wikitide_command
from wikitide.localstack.supervisor import ServiceSpec, Supervisor

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _events() -> list[dict]:
    """Edits of the recording, one per revision."""
    found: dict[str, dict] = {}
    path = RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson"
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and (event := json.loads(line))["type"] == "edit":
            found.setdefault(_pk(event), event)
    return list(found.values())[:160]


def _page(event: dict) -> str:
    return f"{event['wiki']}:{event['title']}"


def test_aggregates_are_counted_event_by_event_and_one_across_shards_is_dropped_by_the_kcl(
    local_stack, provisioned, tmp_path: Path,
) -> None:
    stack_name = provisioned.stream_name.removesuffix("-changes")
    stream = provisioned.stream_name
    kinesis, dynamodb = boto3.client("kinesis"), boto3.client("dynamodb")
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    assert len(shards) >= 2

    def shard_of(event: dict) -> str:
        point = hash_key(_page(event))
        return next(s["ShardId"] for s in shards if int(s["HashKeyRange"]["StartingHashKey"]) <= point
                    <= int(s["HashKeyRange"]["EndingHashKey"]))

    events = _events()
    across, written = events[:12], events[12:]
    assert len({shard_of(e) for e in across}) >= 2, "the crossing aggregate must span shards"
    # The hostile event: not the first of its aggregate (its page's first change, after another page's of its shard).
    pages = [_page(e) for e in written]
    spoilt = next(i for i in range(1, len(written)) if pages.index(pages[i]) == i
                  and shard_of(written[i]) in {shard_of(written[j]) for j in range(i) if pages.index(pages[j]) == j})
    hostile = {**written[spoilt], "namespace": "--1"}
    good = [e for e in written if e is not written[spoilt]]

    # An aggregate packed without regard to shards: its first event's shard receives it.
    crossing = Aggregate()
    for event in across:
        assert crossing.add(_page(event), json.dumps(event).encode())
    key, data = crossing.record()
    last: dict[str, int] = {}
    landed = kinesis.put_record(StreamName=stream, Data=data, PartitionKey=key)
    last[landed["ShardId"]] = int(landed["SequenceNumber"])

    # The producer's writer: events packed per shard; then copies of ten of them, packed again. Its calls are
    # recorded, to hold them against what the producer's task role allows on AWS.
    recorder = CallRecorder({stream: "StreamArn"})
    writer = make_writer(recorder.attach(boto3.client("kinesis")), stream, "records", aggregate=True)
    entries = [Entry(json.dumps(hostile if e is written[spoilt] else e).encode(), _page(e)) for e in written]
    copies = [Entry(json.dumps(e).encode(), _page(e)) for e in good[:10]]
    assert writer.put(entries) == [shard_of(e) for e in written]
    writer.put(copies)
    writer.close()
    assert ("kinesis:ListShards", "StreamArn") in recorder.calls
    assert not_granted(recorder.calls, grants("ProducerTaskRole")) == []
    for shard in shards:  # the tip of each shard, to wait for its checkpoint
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records = kinesis.get_records(ShardIterator=iterator, Limit=1000)["Records"]
        if records:
            last[shard["ShardId"]] = int(records[-1]["SequenceNumber"])
            assert len(records) < len(written) // 2, "events share records"

    def checkpointed() -> bool:
        try:
            for shard_id, sequence in last.items():
                item = dynamodb.get_item(TableName=f"{stack_name}-kcl", Key={"leaseKey": {"S": shard_id}}).get("Item")
                if not item or not item.get("checkpoint", {}).get("S", "").isdigit():
                    return False
                if int(item["checkpoint"]["S"]) < sequence:
                    return False
        except dynamodb.exceptions.ResourceNotFoundException:  # no lease table yet
            return False
        return True

    own_redis = RedisServer(tmp_path)
    own_redis.start()
    supervisor = Supervisor(tmp_path / "logs")
    try:
        supervisor.start(ServiceSpec(
            name="kcl",
            command=wikitide_command("consume", "--properties", str(REPO / "properties" / "local.properties"),
                                     "--worker-id", "aggregates-1", "--state-dir", str(tmp_path)),
            env={**local_stack.env, "WIKITIDE_STACK": stack_name, "REDIS_URL": own_redis.url,
                 "WIKITIDE_PROCESSOR_LOG": str(tmp_path / "logs" / "processor.log")},
            stop_timeout=30, nice=CLIENT_NICE,
        ))
        _wait_for(checkpointed, 300, "every shard's checkpoint past its last record", supervisor.check)
    finally:
        supervisor.stop_all()
        client = redis.Redis.from_url(own_redis.url, decode_responses=True)
        recent_events = sum(int(client.hget(k, "events") or 0) for k in client.scan_iter("wt:m:*") if ":w:" not in k)
        own_redis.stop()

    def scan(table: str) -> list[dict]:
        return [item for page in dynamodb.get_paginator("scan").paginate(TableName=table) for item in page["Items"]]

    stored = {item["pk"]["S"]: item for item in scan(provisioned.events_table)}
    assert set(stored) == {_pk(e) for e in good}  # none of the crossing aggregate's: the KCL dropped it
    positions = [item["position"]["S"] for item in stored.values()]
    assert len(set(positions)) == len(good) and any("." in p for p in positions)
    cells = [item for item in scan(provisioned.counters_table) if item["pk"]["S"] == ledger.TOTAL]
    assert sum(int(cell.get("events", {"N": "0"})["N"]) for cell in cells) == len(good) == recent_events
    letters = scan(provisioned.dead_letter_table)
    assert [(item["reason"]["S"], item["pk"]["S"].split("#")[0]) for item in letters] == [
        ("wrong_type", shard_of(written[spoilt]))]
    assert "." in letters[0]["pk"]["S"], "a user record past the first of its aggregate"
    log = (tmp_path / "logs" / "processor.log").read_text(encoding="utf-8")
    assert sum(int(n) for n in re.findall(r"(\d+) duplicates", log)) == len(copies)
