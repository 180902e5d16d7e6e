"""Bad input through the real SSE client, producer, kinesis-mock, and the processor's real stores:
malformed frames, non-JSON data, missing fields, unknown types and the 2018 format stop nothing,
are counted with their reason, and every valid event is kept."""

import json
import threading
from collections import Counter

import boto3
import pytest
import redis

from kcl_app.bootstrap import build_stores
from kcl_app.handler import process_batch
from producer.frames import Frame
from producer.kinesis_writer import KinesisWriter
from producer.replay import ReplayServer
from producer.service import Producer
from producer.sse_source import read_events
from tests.conftest import RECENTCHANGE
from tests.recorded import identity
from tests.stream import read_records
from wikitide import keys

pytestmark = pytest.mark.integration


def _lines(path):
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _source() -> tuple[list[Frame], int]:
    current = _lines(RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson")[:200]
    legacy = _lines(RECENTCHANGE / "legacy_2018" / "editgroups_qs_batch_with_reverts.ndjson")
    flow = next(line for line in current if json.loads(line)["type"] == "142")
    frames = [Frame(data=line, id=f"v{i}") for i, line in enumerate(current + legacy)]
    bad = [
        Frame(data="{this is not json", id="b1"),
        Frame(data='"just a string"', id="b2"),
        Frame(data=json.dumps({"type": "edit", "wiki": "enwiki"}), id="b3"),  # no meta
        Frame(data=json.dumps({"meta": {"id": "x", "dt": "soon"}, "type": "log", "wiki": "enwiki"}), id="b4"),
        Frame(data=json.dumps({"meta": {"domain": "canary", "id": "c", "dt": "2024-01-01T00:00:00Z"},
                               "type": "edit", "wiki": "canarywiki", "title": "C"}), id="canary"),
    ]
    for offset, frame in enumerate(bad):
        frames.insert(10 + offset * 37, frame)
    assert flow in current
    return frames, len({identity(json.loads(line)) for line in current + legacy})


def test_bad_input_is_counted_and_valid_events_are_all_kept(provisioned, redis_url) -> None:
    frames, valid = _source()
    kinesis = boto3.client("kinesis")
    with ReplayServer(lambda: frames, close_at_end=False) as server:
        stop = threading.Event()
        events = read_events(server.url, "wikitide-tests", should_stop=stop.is_set)
        producer = Producer(events, KinesisWriter(kinesis, provisioned.stream_name), linger=0.05)
        runner = threading.Thread(target=producer.run, args=(stop,))
        runner.start()
        deadline = threading.Event()
        for _ in range(300):
            if producer.stats.read >= len(frames):
                break
            deadline.wait(0.1)
        stop.set()
        runner.join(timeout=30)
    assert producer.stats.read == len(frames)
    assert producer.stats.rejected == {"not_json": 1, "not_an_object": 1}
    assert producer.stats.skipped == {"canary": 1}

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stores, _ = build_stores(boto3.client("dynamodb"), client, provisioned)
    rejected: Counter[str] = Counter()
    claimed = 0
    for records in read_records(kinesis, provisioned.stream_name).values():
        outcome = process_batch(records, stores)
        rejected.update(outcome.rejected)
        claimed += outcome.claimed
    assert dict(rejected) == {"missing_field": 1, "bad_field": 1}
    assert client.hgetall(keys.REJECTED) == {"missing_field": "1", "bad_field": "1"}
    letters = boto3.client("dynamodb").scan(TableName=provisioned.dead_letter_table)["Items"]
    assert sorted(item["reason"]["S"] for item in letters) == ["bad_field", "missing_field"]
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(
        TableName=provisioned.events_table, Select="COUNT"
    )
    stored = sum(page["Count"] for page in pages)
    assert stored == claimed == valid
    total = sum(int(client.hget(k, "events")) for k in client.keys("wt:m:*") if ":w:" not in k)
    assert total == valid
