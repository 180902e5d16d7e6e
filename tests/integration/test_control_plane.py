"""The control plane against the local stack (kinesis-mock, moto, redis-server): status, the producer's pause flag
as the producer reads it, resharding, and dead letters listed page by page and replayed once into the stream."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from api.control_plane import Conflict, ControlPlane
from api.errors import InvalidParameter
from kcl_app.dynamo_store import dead_letter_item
from kcl_app.handler import DeadLetter, StreamRecord
from producer.bootstrap import _read_pause
from producer.positions import PositionStore
from producer.progress import Checkpoint
from tests.conftest import RECENTCHANGE
from tests.iam_grants import CallRecorder, grants, not_granted
from wikitide import envelope, keys
from wikitide.aws import make_adapter_client, make_client
from wikitide.producer_control import ProducerControl
from wikitide.settings import Settings

pytestmark = pytest.mark.integration

SHARD = "shardId-000000000000"
APPLICATION = "no-such-application"


def valid_event() -> bytes:
    line = (RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson").read_bytes().splitlines()[0]
    event = json.loads(line)
    event["meta"]["dt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return json.dumps(event).encode()


@pytest.fixture
def plane(provisioned: Any, redis_url: str) -> Iterator[tuple[ControlPlane, Any, Any]]:
    """The control plane on clients of its own, whose every call must be one the API's task role allows on AWS
    (checked after each test); the test's own clients beside it."""
    settings = Settings.from_env()
    recorder = CallRecorder({
        provisioned.stream_name: "StreamArn",
        provisioned.dead_letter_table: "table:DeadLetterTableName",
        provisioned.producer_state_table: "table:ProducerStateTableName",
        provisioned.events_table: "table:EventsTableName",
        provisioned.counters_table: "table:CountersTableName",
        APPLICATION: "table:kcl",  # on AWS the KCL's application and lease table are `<data stack>-kcl`
    })
    built = ControlPlane(kinesis=recorder.attach(make_client(settings, "kinesis")),
                         dynamodb=recorder.attach(make_client(settings, "dynamodb")),
                         redis_client=redis.Redis.from_url(redis_url),
                         stream=provisioned.stream_name, application=APPLICATION,
                         dead_letter_table=provisioned.dead_letter_table,
                         producer=ProducerControl(recorder.attach(make_adapter_client(settings, "dynamodb")),
                                                  provisioned.producer_state_table, fast_retries=True))
    kinesis, dynamodb = make_client(settings, "kinesis"), make_client(settings, "dynamodb")
    control = ProducerControl(make_adapter_client(settings, "dynamodb"), provisioned.producer_state_table,
                              fast_retries=True)
    yield built, provisioned, (kinesis, dynamodb, control)
    assert recorder.calls, "the control plane made no AWS call to check"
    assert not_granted(recorder.calls, grants("ApiTaskRole")) == []


def test_status_shows_the_stream_the_producer_and_the_dead_letter_counts(plane: Any, redis_url: str) -> None:
    control_plane, resources, (kinesis, dynamodb, control) = plane
    PositionStore(dynamodb, resources.producer_state_table, "synthetic").save(Checkpoint(last_event_id="id-7", gaps=2))
    redis.Redis.from_url(redis_url).hset(keys.REJECTED, mapping={"not_json": 3, "too_deep": 1})
    status = control_plane.status()
    stream = status["stream"]
    assert stream["name"] == resources.stream_name
    assert stream["status"] == "ACTIVE"
    assert len([row for row in stream["shards"] if row["is_open"]]) == stream["open_shards"]
    assert "no lease table" in stream["workers"]
    assert status["producer"]["paused"] is False
    assert [(p["source"], p["last_event_id"], p["gaps"]) for p in status["producer"]["positions"]] == [
        ("synthetic", "id-7", 2)]
    assert status["dead_letters"] == {"by_reason": {"not_json": 3, "too_deep": 1}, "total": 4}


def test_a_pause_set_here_is_what_the_producer_reads(plane: Any) -> None:
    control_plane, _, (_, _, control) = plane
    paused = threading.Event()
    control_plane.set_paused(True, "tester")
    _read_pause(control, paused)
    assert paused.is_set()
    state = control_plane.status()["producer"]
    assert (state["paused"], state["changed_by"]) == (True, "tester")
    assert all(p["source"] != "#control" for p in state["positions"])
    control_plane.set_paused(False, "tester")
    _read_pause(control, paused)
    assert not paused.is_set()


def test_scale_reshards_the_stream(plane: Any) -> None:
    control_plane, resources, (kinesis, _, _) = plane
    before = kinesis.describe_stream_summary(StreamName=resources.stream_name)["StreamDescriptionSummary"]
    target = before["OpenShardCount"] * 2
    answer = control_plane.scale(target)
    assert answer == {"stream": resources.stream_name, "from": before["OpenShardCount"], "to": target,
                      "status": "UPDATING"}
    deadline = time.monotonic() + 60
    summary = before
    while time.monotonic() < deadline:
        summary = kinesis.describe_stream_summary(StreamName=resources.stream_name)["StreamDescriptionSummary"]
        if summary["StreamStatus"] == "ACTIVE" and summary["OpenShardCount"] == target:
            break
        time.sleep(0.5)
    assert summary["OpenShardCount"] == target
    with pytest.raises(InvalidParameter):  # uniform scaling: at most double per call
        control_plane.scale(target * 4)


def test_dead_letters_are_listed_page_by_page_and_a_fixed_one_is_replayed_once(plane: Any) -> None:
    control_plane, resources, (kinesis, dynamodb, _) = plane
    now_ms = int(time.time() * 1000)
    letters = [DeadLetter(StreamRecord(b"{not json", SHARD, 100 + i, now_ms), "not_json", "bad") for i in range(7)]
    letters.append(DeadLetter(StreamRecord(b'{"meta": {}}', SHARD, 200, now_ms), "missing_field", "meta.id"))
    for letter in letters:
        dynamodb.put_item(TableName=resources.dead_letter_table, Item=dead_letter_item(letter))

    seen, cursor, pages = [], None, 0
    while True:
        page = control_plane.dead_letters("not_json", 3, cursor)
        seen += [item["id"] for item in page["items"]]
        assert all(item["reason"] == "not_json" for item in page["items"])
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(letter.record.position for letter in letters[:7])
    assert pages >= 3

    target = letters[-1].record.position
    with pytest.raises(InvalidParameter, match="still refused"):
        control_plane.replay(target, None, "tester")  # the stored record is still invalid
    fixed = valid_event()
    answer = control_plane.replay(target, fixed, "tester")
    assert answer["fixed"] is True
    with pytest.raises(Conflict):
        control_plane.replay(target, fixed, "tester")
    iterator = kinesis.get_shard_iterator(StreamName=resources.stream_name, ShardId=answer["shard_id"],
                                          ShardIteratorType="AT_SEQUENCE_NUMBER",
                                          StartingSequenceNumber=answer["sequence_number"])["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator, Limit=10)["Records"]
    assert envelope.event_of(records[0]["Data"]) == fixed
    stored = dynamodb.get_item(TableName=resources.dead_letter_table, Key={"pk": {"S": target}})["Item"]
    assert stored["replayed_by"]["S"] == "tester"
