"""The local emulators' raw ceilings for the calls the pipeline makes, from plain loops: the same-run baselines of
`benchmarks/headroom.py` and `benchmarks/burst.py`.

A fresh kinesis-mock and moto server (the project's launcher, free ports) take, for `probe` seconds each:
kinesis-mock `PutRecord` from 8 threads (what the producer does on the local stack) and `PutRecords` of 500 as
the stream grows (what it does on AWS); moto `BatchGetItem` of 100 keys, `BatchWriteItem` of 25 items and a
conditional `UpdateItem` (a counter cell's) from 8 threads (the processor's pool). The batch sizes are those of
the processor's calls at 10x the live rate (batches of 100-250 records: claims read 100 keys a call and written
25 items a call).
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from wikitide.localstack.launcher import LocalStack
from wikitide.localstack.services import LOCAL_CREDENTIALS, Ports, free_port

THREADS = 8
RECORD = b"x" * 600  # about a recentchange event's size


def rate_of(call: Callable[[int], int], seconds: float, threads: int = THREADS) -> float:
    """Items per second that `threads` loops of `call(i) -> items` reach in `seconds`."""
    done, stop, lock = [0], threading.Event(), threading.Lock()

    def loop(worker: int) -> None:
        i = worker * 10**9
        while not stop.is_set():
            items = call(i)
            i += 1
            with lock:
                done[0] += items

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(loop, w) for w in range(threads)]
        time.sleep(seconds)
        stop.set()
        for future in futures:
            future.result()
    return done[0] / (time.monotonic() - started)


def clients(stack: LocalStack) -> tuple[Any, Any]:
    options: dict[str, Any] = {
        "region_name": LOCAL_CREDENTIALS["AWS_REGION"], "aws_access_key_id": LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "config": Config(max_pool_connections=THREADS * 2, retries={"max_attempts": 1}),
    }
    kinesis = boto3.client("kinesis", endpoint_url=stack.env["AWS_ENDPOINT_URL_KINESIS"], **options)
    dynamodb = boto3.client("dynamodb", endpoint_url=stack.env["AWS_ENDPOINT_URL_DYNAMODB"], **options)
    return kinesis, dynamodb


def kinesis_ceilings(kinesis: Any, seconds: float) -> dict[str, float]:
    """Records per second of kinesis-mock's `PutRecord` (8 threads, after 2 probes' worth stored) and of one
    `PutRecords` of 500 at 20,000 stored, printed as they are measured."""
    kinesis.create_stream(StreamName="ceiling-record", ShardCount=2)
    kinesis.create_stream(StreamName="ceiling-records", ShardCount=2)
    time.sleep(1)

    def put_record(i: int) -> int:
        kinesis.put_record(StreamName="ceiling-record", Data=RECORD, PartitionKey=f"page-{i}")
        return 1

    first = rate_of(put_record, seconds)
    stored = int(first * seconds)
    later = rate_of(put_record, seconds)
    stored += int(later * seconds)
    print(f"kinesis-mock PutRecord, {THREADS} threads (the producer on the local stack): {first:,.0f} records/s "
          f"on a fresh stream, {later:,.0f} records/s with {stored:,} stored")
    batch = [{"Data": RECORD, "PartitionKey": f"page-{i}"} for i in range(500)]
    held = 0
    for target in (0, 5_000, 10_000, 20_000):
        while held < target:
            kinesis.put_records(StreamName="ceiling-records", Records=batch)
            held += len(batch)
        started = time.monotonic()
        kinesis.put_records(StreamName="ceiling-records", Records=batch)
        took = time.monotonic() - started
        held += len(batch)
        print(f"kinesis-mock PutRecords of 500 (the producer on AWS) with {target:,} stored: "
              f"{len(batch) / took:,.0f} records/s")
    return {"PutRecord": later, "PutRecords": len(batch) / took}


def dynamodb_ceilings(dynamodb: Any, seconds: float) -> dict[str, float]:
    """Calls per second of moto's `BatchWriteItem` of 25, `BatchGetItem` of 100 and conditional `UpdateItem`
    (8 threads each), by action name; printed as they are measured."""
    table = f"ceiling-{uuid.uuid4().hex[:6]}"
    dynamodb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    item = {"position": {"S": "4960000000000000000000001"}, "doc": {"S": RECORD.decode()}}

    def batch_write(i: int) -> int:
        dynamodb.batch_write_item(RequestItems={table: [
            {"PutRequest": {"Item": {"pk": {"S": f"k{i}-{n}"}, **item}}} for n in range(25)]})
        return 25

    def batch_get(i: int) -> int:
        dynamodb.batch_get_item(RequestItems={table: {"Keys": [{"pk": {"S": f"k{i}-{n}"}} for n in range(100)],
                                                      "ConsistentRead": True}})
        return 100

    def update(i: int) -> int:
        dynamodb.update_item(TableName=table, Key={"pk": {"S": f"cell-{i // 10**9}-{i % 500}"}},
                             UpdateExpression="ADD #n :one SET #seq = :seq",
                             ConditionExpression="attribute_not_exists(#seq) OR #seq < :seq",
                             ExpressionAttributeNames={"#n": "events", "#seq": "seq"},
                             ExpressionAttributeValues={":one": {"N": "1"}, ":seq": {"N": str(i)}})
        return 1

    calls: dict[str, float] = {}
    for action, size, call in (("BatchWriteItem", 25, batch_write), ("BatchGetItem", 100, batch_get),
                               ("UpdateItem", 1, update)):
        items = rate_of(call, seconds)
        calls[action] = items / size
        print(f"moto {action} of {size} {'items' if size > 1 else '(conditional)'}, {THREADS} threads: "
              f"{items:,.0f} {'items' if size > 1 else 'calls'}/s, {items / size:,.0f} calls/s")
    return calls


def measure(probe: float) -> dict[str, float]:
    """Every ceiling above, on a fresh kinesis-mock and moto of their own (stopped before returning), by action."""
    with tempfile.TemporaryDirectory() as state:
        ports = Ports(kinesis=free_port(), kinesis_tls=free_port(), moto=free_port(), redis=free_port(),
                      api=free_port())
        stack = LocalStack(state_dir=Path(state), ports=ports, stack_name="wt-ceilings")
        try:
            stack.start_infrastructure()
            kinesis, dynamodb = clients(stack)
            return {**kinesis_ceilings(kinesis, probe), **dynamodb_ceilings(dynamodb, probe)}
        finally:
            stack.stop()
