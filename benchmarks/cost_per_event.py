"""What one event costs in billed units, counted at the live mix: the per-event quantities of `wikitide cost`.

The recorded live stream (`../shared/data/recentchange/ndjson/kirajano_recentchange_2021-08-27.ndjson`: 1,950
events, 66 s, 73 wikis, ~30 events/s) goes through the producer's own record builder (`producer.batcher.to_entry`:
the envelope, the partition key) and is spread over shards by the partition key's MD5, as Kinesis spreads it; the
real processor (`kcl_app.handler.process_batch` over `kcl_app.bootstrap.build_stores`) then stores it in moto's
DynamoDB and a real redis-server, one shard's batch at a time, with the batch size the KCL's polling gives at that
rate (records per shard per poll). A botocore hook on the DynamoDB client counts every request, the items each
writes or reads and the size of every item written (DynamoDB bills a write request unit per 1 KB of item, a
strongly consistent read unit per 4 KB). Afterwards the tables are scanned for the stored items' sizes: the counter
cells (updated in place, so the request does not show their size) must be at most 1 KB for one update to be one
write unit, and the stored bytes per event give the storage growth.

Global secondary indexes bill their own writes: an item holding an index's key attributes is written to the index
too, a write unit per KB of its projection. The indexes are read from the deployed tables (`DescribeTable`), and
each put item (and each updated item, from the `ALL_NEW` the ledger asks for) is priced on every index it enters,
as `index_write_units_per_event`; `index_stored_bytes_per_event` is the events table's indexes' storage (each
index item with DynamoDB's 100 bytes of overhead). The write requests per event stay the table's own writes.

Scenarios: `live` is the recording as it is, on 2 shards, 8 records per batch (30 events/s over 2 shards polled
every 0.5 s, `properties/aws.properties`); `x10` is ten copies of every event in the same minutes (copies
re-keyed and on pages of their own, so pages scale with the traffic and wikis do not), on 6 shards with batches
of 250 (what 3,000 events/s on 6 shards polled every 0.5 s gives). Ten copies, not a hundred: moto takes a few
hundred requests a second, and the per-event figures fall as batches grow, so the x10 figures are an upper bound
for 100x.

The processor's own metrics and log lines per batch are counted too (CloudWatch bills both), through the real
`ChangeProcessor` with a `MetricsRecorder`.

Run: .venv/bin/python benchmarks/cost_per_event.py [--write wikitide/cost/measured.json]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import math
import os
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import redis
from recorded import RECORDING, recorded_events

from kcl_app.bootstrap import BatchHandler, build_stores
from kcl_app.processor import ChangeProcessor
from producer.batcher import MAX_BATCH_RECORDS, Entry, to_entry
from producer.kinesis_writer import AggregatingWriter, ShardMap
from wikitide import keys, stack
from wikitide.envelope import event_of
from wikitide.localstack.launcher import LocalStack
from wikitide.localstack.services import Ports, free_port
from wikitide.metrics.recorder import MetricsRecorder

KB = 1024
PRODUCER_LINGER_SECONDS = 0.25  # the producer's default `--linger`: a call holds what arrived meanwhile


@dataclass(frozen=True)
class Scenario:
    name: str
    copies: int
    shards: int
    batch: int
    events_per_second: float


SCENARIOS = [Scenario("live", 1, 2, 8, 30.0), Scenario("x10", 10, 6, 250, 3000.0)]


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item in its wire form: names plus values (numbers about a byte per two digits)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    (kind, inner), = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return len(inner.strip("-").lstrip("0")) // 2 + 2
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(_value_size(v) + 1 for v in inner)
    return sum(len(str(x).encode()) for x in inner)  # SS, NS, BS


@dataclass(frozen=True)
class Index:
    """A global secondary index as DynamoDB bills its writes: an item holding every key attribute is written to it
    too, and the write costs a write unit per KB of the projected item (the index's keys, the table's keys and the
    projected attributes)."""

    keys: frozenset[str]
    projected: frozenset[str] | None  # None: every attribute


def indexes_of(dynamodb: Any, table: str) -> list[Index]:
    description = dynamodb.describe_table(TableName=table)["Table"]
    table_keys = {k["AttributeName"] for k in description["KeySchema"]}
    found = []
    for index in description.get("GlobalSecondaryIndexes", []):
        keys_ = frozenset(k["AttributeName"] for k in index["KeySchema"])
        projection = index["Projection"]
        kind = projection["ProjectionType"]
        projected = None if kind == "ALL" else keys_ | table_keys | frozenset(projection.get("NonKeyAttributes", []))
        found.append(Index(keys_, projected))
    return found


def index_write_units(indexes: list[Index], item: dict[str, Any]) -> int:
    units = 0
    for index in indexes:
        if index.keys <= item.keys():
            shown = item if index.projected is None else {k: v for k, v in item.items() if k in index.projected}
            units += math.ceil(item_size(shown) / KB)
    return units


class Counting:
    """Counts what the processor asks of DynamoDB, in billed units, its tables' index writes included."""

    def __init__(self, indexes: dict[str, list[Index]]) -> None:
        self.requests: Counter[str] = Counter()
        self.write_requests = 0  # items written (each put, update, delete)
        self.write_units = 0
        self.index_write_units = 0
        self.read_units = 0
        self._indexes = indexes

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        operation = model.name
        self.requests[operation] += 1
        if operation == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    self.write_requests += 1
                    item = request.get("PutRequest", {}).get("Item")
                    self.write_units += math.ceil(item_size(item) / KB) if item else 1
                    if item:
                        self.index_write_units += index_write_units(self._indexes.get(table, []), item)
        elif operation == "PutItem":
            self.write_requests += 1
            self.write_units += math.ceil(item_size(params["Item"]) / KB)
            self.index_write_units += index_write_units(self._indexes.get(params["TableName"], []), params["Item"])
        elif operation in ("UpdateItem", "DeleteItem"):
            self.write_requests += 1
            self.write_units += 1  # the item's size after the update: checked against the scan below
        elif operation == "BatchGetItem":
            # Strongly consistent (the claims' and the ledger's reads): one unit per key of up to 4 KB.
            self.read_units += sum(len(request["Keys"]) for request in params["RequestItems"].values())
        elif operation in ("GetItem", "Query"):
            self.read_units += 1

    def after_call(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        """An update's index write, from the item it left (the ledger asks for `ALL_NEW`; an update that returns
        no item, the latest minute's, writes no indexed attribute)."""
        if model.name == "UpdateItem" and "Attributes" in parsed:
            table = context.get("wikitide_table", "")
            self.index_write_units += index_write_units(self._indexes.get(table, []), parsed["Attributes"])

    def remember_table(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if "TableName" in params:
            context["wikitide_table"] = params["TableName"]


def stream_of(scenario: Scenario) -> list[tuple[str, bytes, bytes]]:
    """(partition key, Kinesis record data, event) in arrival order: the copies of each event follow it."""
    records = []
    for n, event in enumerate(recorded_events()):
        for copy in range(scenario.copies):
            if copy:
                event = dict(event, meta={**event["meta"], "id": str(uuid.UUID(int=n * 100 + copy))})
                # A page of its own, its title still within MediaWiki's 255 bytes.
                title = str(event.get("title", "")).encode()[:240].decode(errors="ignore")
                event["title"] = f"{title} ~{copy}"
                if "id" in event:
                    event["id"] = 3_000_000_000 + n * 100 + copy
                if isinstance(event.get("revision"), dict):
                    event["revision"] = {**event["revision"], "new": 300_000_000 + n * 100 + copy}
            entry = to_entry(json.dumps(event, ensure_ascii=False), f'[{{"offset":{n}}}]',
                             received_ms=1_630_070_400_000 + n)
            records.append((entry.partition_key, entry.data, event_of(entry.data)))
    return records


def shard_of(partition_key: str, shards: int) -> int:
    """Kinesis maps the key's MD5 onto shards with equal hash ranges (a fresh uniformly split stream)."""
    return int.from_bytes(hashlib.md5(partition_key.encode()).digest(), "big") * shards >> 128  # noqa: S324


class _UniformShards:
    """ListShards of a fresh stream of `count` shards with equal hash ranges, as `shard_of` maps keys."""

    def __init__(self, count: int) -> None:
        self.count = count

    def list_shards(self, **_: Any) -> dict[str, Any]:
        space = 2**128
        return {"Shards": [
            {"ShardId": f"shard-{i}", "SequenceNumberRange": {"StartingSequenceNumber": "0"},
             "HashKeyRange": {"StartingHashKey": str(-(-i * space // self.count)),
                              "EndingHashKey": str(-(-(i + 1) * space // self.count) - 1)}}
            for i in range(self.count)]}


class _NotedRecords:
    """The writer under the producer's `AggregatingWriter`: notes each Kinesis record's data size and answers with
    the shard its partition key hashes to."""

    def __init__(self, shards: int) -> None:
        self.shards = shards
        self.sizes: list[int] = []

    def put(self, entries: Any) -> list[str]:
        self.sizes.extend(len(entry.data) for entry in entries)
        return [f"shard-{shard_of(entry.partition_key, self.shards)}" for entry in entries]

    def close(self) -> None:
        """Nothing held."""


def kinesis_record_sizes(stream: list[tuple[str, bytes, bytes]], scenario: Scenario) -> list[int]:
    """The data size of each Kinesis record the producer writes for `stream` at the scenario's rate: its own
    `AggregatingWriter` packing each call's events per shard, a call holding what arrives in one `--linger`."""
    per_call = max(1, min(MAX_BATCH_RECORDS, round(scenario.events_per_second * PRODUCER_LINGER_SECONDS)))
    noted = _NotedRecords(scenario.shards)
    writer = AggregatingWriter(noted, ShardMap(_UniformShards(scenario.shards), "cost"))  # type: ignore[arg-type]
    entries = [Entry(data, key) for key, data, _ in stream]
    for start in range(0, len(entries), per_call):
        writer.put(entries[start : start + per_call])
    return noted.sizes


@dataclass
class Record:
    """What the daemon hands the processor (amazon_kclpy's record, as the processor reads it)."""

    binary_data: bytes
    sequence_number: str
    sub_sequence_number: int
    timestamp_millis: int


@dataclass
class Input:
    records: list[Record]
    checkpointer: Any
    millis_behind_latest: int = 0


class Checkpointer:
    def checkpoint(self, sequence_number: str | None = None, sub_sequence: int | None = None) -> None:
        return None


def run(scenario: Scenario, dynamodb: Any, redis_client: redis.Redis, cloudformation: Any, kinesis: Any) -> dict:
    resources = stack.deploy_local(cloudformation, kinesis, f"cost-{uuid.uuid4().hex[:8]}")
    redis_client.flushdb()
    redis_client.set(keys.READY, int(time.time()))
    counting = Counting({table: indexes_of(dynamodb, table)
                         for table in (resources.events_table, resources.counters_table)})
    dynamodb.meta.events.register("before-parameter-build.dynamodb", counting)
    dynamodb.meta.events.register("before-parameter-build.dynamodb", counting.remember_table)
    dynamodb.meta.events.register("after-call.dynamodb", counting.after_call)
    try:
        stores, _ = build_stores(dynamodb, redis_client, resources)
        handler = BatchHandler(stores)
        recorder = MetricsRecorder(time.time)
        processors: dict[int, ChangeProcessor] = {}
        log = io.StringIO()
        handler_log = logging.StreamHandler(log)
        logging.getLogger("kcl_app.processor").addHandler(handler_log)
        logging.getLogger("kcl_app.processor").setLevel(logging.INFO)
        stream = stream_of(scenario)
        buffers: dict[int, list[Record]] = {}
        batches = 0
        record_bytes = [len(data) for _, data, _ in stream]
        kinesis_bytes = kinesis_record_sizes(stream, scenario)
        for sequence, (key, data, _) in enumerate(stream):
            shard = shard_of(key, scenario.shards)
            buffer = buffers.setdefault(shard, [])
            buffer.append(Record(data, str(49_600_000_000_000_000_000 + sequence), 0, 1_630_070_400_000 + sequence))
            if len(buffer) == scenario.batch:
                batches += _deliver(processors, shard, buffer, handler, recorder)
                buffers[shard] = []
        for shard, buffer in buffers.items():
            if buffer:
                batches += _deliver(processors, shard, buffer, handler, recorder)
        logging.getLogger("kcl_app.processor").removeHandler(handler_log)
        metrics_datums = recorder.drain()
    finally:
        dynamodb.meta.events.unregister("before-parameter-build.dynamodb", counting)
        dynamodb.meta.events.unregister("before-parameter-build.dynamodb", counting.remember_table)
        dynamodb.meta.events.unregister("after-call.dynamodb", counting.after_call)
    distinct = _count(dynamodb, resources.events_table)
    sizes = {name: _sizes(dynamodb, table) for name, table in (
        ("events", resources.events_table), ("counters", resources.counters_table))}
    return {
        "scenario": scenario.name, "copies": scenario.copies, "shards": scenario.shards, "batch": scenario.batch,
        "events_per_second": scenario.events_per_second, "records": len(stream), "distinct_events": distinct,
        "batches": batches,
        "dynamodb_requests": dict(counting.requests),
        "write_requests_per_event": counting.write_requests / distinct,
        "write_units_per_event": counting.write_units / distinct,
        "index_write_units_per_event": counting.index_write_units / distinct,
        "read_units_per_event": counting.read_units / distinct,
        "record_bytes_mean": sum(record_bytes) / len(record_bytes),
        "record_bytes_max": max(record_bytes),
        "events_per_kinesis_record": len(record_bytes) / len(kinesis_bytes),
        "kinesis_record_bytes_mean": sum(kinesis_bytes) / len(kinesis_bytes),
        "put_payload_units_per_event": sum(math.ceil(b / (25 * KB)) for b in kinesis_bytes) / len(record_bytes),
        "kinesis_billed_kb_per_event": sum(math.ceil(b / KB) for b in kinesis_bytes) / len(record_bytes),
        # Firehose delivers the events one by one (it de-aggregates what it reads), each billed as 5 KB at least;
        # whether it bills its ingestion per aggregate instead, AWS's pages do not say: the larger figure is kept.
        "firehose_billed_kb_per_event": sum(5 * math.ceil(b / (5 * KB)) for b in record_bytes) / len(record_bytes),
        "stored_bytes_per_event": sizes["events"]["total"] / distinct,
        "index_stored_bytes_per_event": sizes["events"]["in_indexes"] / distinct,
        "item_bytes_max": {name: size["max"] for name, size in sizes.items()},
        "counter_cells_over_1kb": sizes["counters"]["over_1kb"],
        "processor_log_bytes_per_batch": len(log.getvalue().encode()) / batches,
        "processor_metric_names": sorted({d.name for d in metrics_datums}),
    }


def _deliver(processors: dict[int, ChangeProcessor], shard: int, records: list[Record], handler: BatchHandler,
             recorder: MetricsRecorder) -> int:
    processor = processors.get(shard)
    if processor is None:
        processor = processors[shard] = ChangeProcessor(handler, metrics=recorder)

        @dataclass
        class Initialize:
            shard_id: str = f"shardId-{shard:012d}"
            sequence_number: str = "TRIM_HORIZON"

        processor.initialize(Initialize())
    processor.process_records(Input(records, Checkpointer()))
    return 1


def _count(dynamodb: Any, table: str) -> int:
    pages = dynamodb.get_paginator("scan").paginate(TableName=table, Select="COUNT")
    return sum(page["Count"] for page in pages)


INDEX_ITEM_OVERHEAD = 100  # bytes DynamoDB adds to each index item's stored size


def _sizes(dynamodb: Any, table: str) -> dict[str, int]:
    indexes = indexes_of(dynamodb, table)
    items = [item for page in dynamodb.get_paginator("scan").paginate(TableName=table) for item in page["Items"]]
    sizes = [item_size(item) for item in items]
    in_indexes = sum(item_size(item if index.projected is None else
                               {k: v for k, v in item.items() if k in index.projected}) + INDEX_ITEM_OVERHEAD
                     for item in items for index in indexes if index.keys <= item.keys())
    return {"total": sum(sizes), "max": max(sizes, default=0), "over_1kb": sum(s > KB for s in sizes),
            "in_indexes": in_indexes}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", type=Path, default=None, help="also write the figures to this JSON file")
    parser.add_argument("--only", choices=[s.name for s in SCENARIOS], default=None)
    args = parser.parse_args()
    scenarios = [s for s in SCENARIOS if args.only in (None, s.name)]
    results = []
    with tempfile.TemporaryDirectory() as state:
        ports = Ports(kinesis=free_port(), kinesis_tls=free_port(), moto=free_port(), redis=free_port(),
                      api=free_port())
        local = LocalStack(state_dir=Path(state), ports=ports, stack_name="cost")
        try:
            local.start_infrastructure()
            os.environ.update(local.env)
            dynamodb = boto3.client("dynamodb")
            redis_client = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
            for scenario in scenarios:
                began = time.monotonic()
                result = run(scenario, dynamodb, redis_client, boto3.client("cloudformation"),
                             boto3.client("kinesis"))
                result["seconds"] = round(time.monotonic() - began, 1)
                results.append(result)
                print(json.dumps(result, indent=2), flush=True)
        finally:
            local.stop()
    for r in results:
        print(f"{r['scenario']}: {r['distinct_events']:,} distinct events, {r['shards']} shards, batches of "
              f"{r['batch']}: {r['write_requests_per_event']:.2f} DynamoDB write requests and "
              f"{r['write_units_per_event']:.2f} write units per distinct event (and "
              f"{r['index_write_units_per_event']:.2f} in the tables' indexes), {r['read_units_per_event']:.2f} "
              f"read units; {r['record_bytes_mean']:,.0f} bytes per event's record (max {r['record_bytes_max']:,}), "
              f"{r['events_per_kinesis_record']:.1f} events per aggregated Kinesis record; "
              f"{r['stored_bytes_per_event']:,.0f} bytes stored per event; counter cells over 1 KB: "
              f"{r['counter_cells_over_1kb']}")
    if args.write:
        # A scenario run alone replaces its own figures and keeps the others'.
        kept = json.loads(args.write.read_text())["scenarios"] if args.write.exists() else []
        names = {r["scenario"] for r in results}
        scenarios_out = [r for r in kept if r["scenario"] not in names] + results
        args.write.write_text(json.dumps({
            "measured": datetime.now(UTC).strftime("%Y-%m-%d"),
            "command": "benchmarks/cost_per_event.py",
            "recording": str(RECORDING.relative_to(RECORDING.parents[4])),
            "scenarios": sorted(scenarios_out, key=lambda r: r["events_per_second"]),
        }, indent=2) + "\n")
        print(f"written to {args.write}")


if __name__ == "__main__":
    main()
