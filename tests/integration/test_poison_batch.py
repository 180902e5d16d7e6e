"""A poison batch through the real MultiLangDaemon: hostile records between good ones on one shard, one of them a
record that DynamoDB refuses (injected by a proxy that answers ValidationException for its item). The shard's
checkpoint goes past the batch, every good record is counted exactly once, and the dead-letter table holds
exactly the poison records, each with its reason. Expected values are computed from the source events."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import boto3
import pytest
import redis

from kcl_app import ledger
from tests.conftest import RECENTCHANGE
from tests.integration.dynamodb_fault_proxy import DynamoDBFaultProxy
from tests.integration.test_processor_faults import RedisServer, _wait_for
from tests.recorded import identity
from wikitide import keys
from wikitide.localstack.services import CLIENT_NICE, wikitide_command
from wikitide.localstack.supervisor import ServiceSpec, Supervisor

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
REFUSED_TITLE = "Wikitide refused item"


def _pk(event: dict) -> str:
    """The events table's key of an event, from its identity computed on the raw JSON."""
    first, kind, value = (*identity(event), None)[:3]
    return f"meta#{kind}" if first == "meta" else f"{first}#{kind}#{value}"


def _source() -> tuple[list[bytes], list[dict], dict[int, str]]:
    """The payloads in order, the good events, and the index of each poison payload with its expected reason."""
    lines = [line for line in (RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson")
             .read_text(encoding="utf-8").splitlines() if line.strip()]
    good = [json.loads(line) for line in lines[:80]]
    edits = [json.loads(line) for line in lines[80:200] if json.loads(line)["type"] == "edit"]
    nested = "[" * 100_000 + "]" * 100_000
    poison: list[tuple[bytes, str]] = [
        (json.dumps({**edits[0], "namespace": "--1"}).encode(), "wrong_type"),
        (json.dumps({**edits[1], "revision": {"old": 1, "new": "abc"}}).encode(), "wrong_type"),
        (json.dumps({**edits[2], "meta": {**edits[2]["meta"], "dt": "2999-01-01T00:00:00Z"}}).encode(), "future_dt"),
        (json.dumps({**edits[3], "log_params": "@@"}).encode().replace(b'"@@"', nested.encode()), "too_deep"),
        (json.dumps({**edits[4], "title": "T" * 300}).encode(), "too_long"),
        (json.dumps({**edits[5], "comment": "@@"}).encode().replace(b"@@", b"caf\xe9"), "not_json"),
        (json.dumps({**edits[6], "title": REFUSED_TITLE}).encode(), "processing_error"),
    ]
    payloads = [json.dumps(event).encode() for event in good]
    expected: dict[int, str] = {}
    for n, (payload, _) in enumerate(poison):
        payloads.insert(5 + n * 11, payload)  # spread between good records
    for index, payload in enumerate(payloads):
        for bad, reason in poison:
            if payload is bad:
                expected[index] = reason
    payloads.insert(40, payloads[30] if 30 not in expected else payloads[31])  # a duplicate of a good record
    expected = {(i + 1 if i >= 40 else i): reason for i, reason in expected.items()}
    return payloads, good, expected


def test_a_poison_batch_is_isolated_and_the_shard_goes_on(local_stack, provisioned, tmp_path: Path) -> None:
    stack_name = provisioned.stream_name.removesuffix("-changes")
    dynamodb = boto3.client("dynamodb")
    kinesis = boto3.client("kinesis")
    payloads, good, poison = _source()
    response = kinesis.put_records(StreamName=provisioned.stream_name, Records=[
        {"Data": payload, "PartitionKey": "one page, one shard"} for payload in payloads
    ])
    assert response.get("FailedRecordCount", 0) == 0
    entries = response["Records"]
    shard = entries[0]["ShardId"]
    assert {entry["ShardId"] for entry in entries} == {shard}
    positions = {f"{shard}#{entries[i]['SequenceNumber']}": reason for i, reason in poison.items()}
    last_sequence = max(entries, key=lambda entry: int(entry["SequenceNumber"]))["SequenceNumber"]
    good_keys = {_pk(event) for event in good}

    def scan(table: str) -> list[dict]:
        pages = dynamodb.get_paginator("scan").paginate(TableName=table)
        return [item for page in pages for item in page["Items"]]

    def checkpoint() -> str | None:
        try:
            item = dynamodb.get_item(TableName=f"{stack_name}-kcl", Key={"leaseKey": {"S": shard}}).get("Item")
        except dynamodb.exceptions.ResourceNotFoundException:  # the daemon has not created its lease table yet
            return None
        return item["checkpoint"]["S"] if item and "checkpoint" in item else None

    own_redis = RedisServer(tmp_path)
    own_redis.start()
    supervisor = Supervisor(tmp_path / "logs")
    try:
        with DynamoDBFaultProxy(local_stack.env["AWS_ENDPOINT_URL_DYNAMODB"]) as proxy:
            proxy.refuse_items_naming(REFUSED_TITLE, provisioned.events_table)
            supervisor.start(ServiceSpec(
                name="kcl",
                command=wikitide_command("consume", "--properties", str(REPO / "properties" / "local.properties"),
                                         "--worker-id", "poison-1", "--state-dir", str(tmp_path)),
                env={**local_stack.env, "WIKITIDE_STACK": stack_name, "REDIS_URL": own_redis.url,
                     "AWS_ENDPOINT_URL_DYNAMODB": proxy.url,
                     "WIKITIDE_PROCESSOR_LOG": str(tmp_path / "logs" / "processor.log")},
                stop_timeout=30, nice=CLIENT_NICE,
            ))
            _wait_for(lambda: checkpoint() == last_sequence, 300, "the shard's checkpoint past the batch",
                      supervisor.check)
            restarts = supervisor.restarts()["kcl"]
            refused = proxy.refused
    finally:
        supervisor.stop_all()
        client = redis.Redis.from_url(own_redis.url, decode_responses=True)
        rejected = client.hgetall(keys.REJECTED)
        recent_events = sum(int(client.hget(k, "events") or 0) for k in client.scan_iter("wt:m:*") if ":w:" not in k)
        own_redis.stop()

    letters = {item["pk"]["S"]: item for item in scan(provisioned.dead_letter_table)}
    assert {pk: item["reason"]["S"] for pk, item in letters.items()} == positions
    refused_letter = next(item for item in letters.values() if item["reason"]["S"] == "processing_error")
    assert "ValidationException" in refused_letter["detail"]["S"]
    assert "payload_base64" in next(item for item in letters.values() if item["reason"]["S"] == "not_json")
    assert {item["pk"]["S"] for item in scan(provisioned.events_table)} == good_keys
    cells = [item for item in scan(provisioned.counters_table) if item["pk"]["S"] == ledger.TOTAL]
    assert sum(int(cell.get("events", {"N": "0"})["N"]) for cell in cells) == len(good_keys) == recent_events
    assert rejected == {reason: str(n) for reason, n in Counter(poison.values()).items()}
    assert refused >= 1 and restarts == 0  # isolated in place: no exit, no redelivery needed
    log = (tmp_path / "logs" / "processor.log").read_text(encoding="utf-8")
    assert "splitting it" in log


def test_the_delivery_counts_survive_a_new_client_and_expire(redis_url: str) -> None:
    from kcl_app.redelivery import DEATHS_BEFORE_SPLIT, DELIVERIES_KEY, Delivery, RedisDeliveryLog

    def log() -> RedisDeliveryLog:  # a new client each time, as a restarted processor has
        return RedisDeliveryLog(redis.Redis.from_url(redis_url))

    assert log().begin("shard-a", 100) == Delivery(0, False)
    for deaths in range(1, DEATHS_BEFORE_SPLIT + 2):
        assert log().begin("shard-a", 100) == Delivery(deaths, True)
    # Progress past some runs, then a death further on: the run length is kept, the record is not given up.
    assert log().begin("shard-a", 150) == Delivery(DEATHS_BEFORE_SPLIT + 1, False)
    assert log().begin("shard-b", 7) == Delivery(0, False)
    log().end("shard-a")
    assert log().begin("shard-a", 150) == Delivery(0, False)
    assert 0 < redis.Redis.from_url(redis_url).ttl(DELIVERIES_KEY) <= 86_400
    assert RedisDeliveryLog(redis.Redis(port=1, socket_connect_timeout=1)).begin("shard-a", 1) == Delivery()
