"""The record processor against real moto DynamoDB and redis-server, against plain loops making the same calls.

1. Capture: `process_batch` runs once over the records with the real stores (`kcl_app.bootstrap.build_stores`)
   on recording clients, which note every DynamoDB call (operation and arguments) and every Redis pipeline
   (its command stack) per batch. That is the call list of the baselines: the same number and kind of calls
   with the same payloads (conditional PutItem per change, conditional PutItem per page for the latest change,
   BatchGetItem and conditional UpdateItem per counter cell, the latest-minute UpdateItem, and one Redis
   pipeline per batch with the same Lua merges, ZADDs and trims, the script's SCRIPT EXISTS check included).
2. Timed runs, each on fresh tables (a new CloudFormation stack) and an empty Redis (marked ready, as a live
   one is, so no rebuild starts), in rotating order, medians of the rounds:
   - the processor: `process_batch` per batch with the real stores (its DynamoDB writes go through an 8-thread
     pool);
   - plain loop: the captured calls replayed one after the other with boto3 and redis-py, nothing else;
   - plain loop, pooled: the same, each run of independent writes mapped over the same 8-thread pool, i.e. the
     same concurrency as the processor. The ratio against this one is the like-for-like figure.
   Every run is checked: the events table and the Redis totals must hold every distinct change once.

The machine is shared and noisy, and moto answers a conditional write in milliseconds: the DynamoDB
emulator, not the processor, bounds every figure here. Compare the ratios, not the absolute rates.

Run: .venv/bin/python benchmarks/processor_stores.py [--records N] [--batch B] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import redis
from botocore.exceptions import ClientError
from recorded import stream_records

from kcl_app.bootstrap import build_stores
from kcl_app.dynamo_store import WritePool, is_condition_failure
from kcl_app.handler import StreamRecord, process_batch
from kcl_app.redis_mirror import _ADVANCE, _MERGE
from wikitide import keys, stack
from wikitide.cells import LATEST_KEY
from wikitide.localstack.launcher import LocalStack
from wikitide.localstack.services import Ports, free_port
from wikitide.stack import StackResources

GOAL = 0.80


@dataclass
class Phase:
    """Consecutive calls of one kind within a batch: independent of each other, as the processor's pool maps them."""

    kind: tuple[str, str, bool]
    calls: list[Any] = field(default_factory=list)


class Capture:
    """The calls of each batch, in the order they were made."""

    def __init__(self) -> None:
        self.batches: list[list[Phase]] = []
        self._lock = threading.Lock()

    def new_batch(self) -> None:
        self.batches.append([])

    def note(self, kind: tuple[str, str, bool], call: Any) -> None:
        with self._lock:
            phases = self.batches[-1]
            if not phases or phases[-1].kind != kind:
                phases.append(Phase(kind))
            phases[-1].calls.append(call)


class RecordingDynamoDB:
    def __init__(self, client: Any, capture: Capture) -> None:
        self._client, self._capture = client, capture

    def __getattr__(self, operation: str) -> Callable[..., Any]:
        method = getattr(self._client, operation)

        def call(**kwargs: Any) -> Any:
            table = kwargs.get("TableName") or next(iter(kwargs.get("RequestItems", {})), "")
            self._capture.note((operation, table, kwargs.get("Key") == LATEST_KEY), kwargs)
            return method(**kwargs)

        return call


class RecordingRedis:
    def __init__(self, client: redis.Redis, capture: Capture) -> None:
        self._client, self._capture = client, capture

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def pipeline(self, transaction: bool = True) -> Any:
        pipe = self._client.pipeline(transaction=transaction)
        execute = pipe.execute

        def recorded(raise_on_error: bool = True) -> Any:
            self._capture.note(("redis", "", False), list(pipe.command_stack))
            return execute(raise_on_error)

        pipe.execute = recorded
        return pipe


def retarget(kwargs: dict[str, Any], tables: dict[str, str]) -> dict[str, Any]:
    """The same call, on the tables of another stack."""
    copy = dict(kwargs)
    if "TableName" in copy:
        copy["TableName"] = tables[copy["TableName"]]
    if "RequestItems" in copy:
        copy["RequestItems"] = {tables[name]: value for name, value in copy["RequestItems"].items()}
    return copy


def table_names(resources: StackResources) -> list[str]:
    return [resources.events_table, resources.counters_table,
            resources.dead_letter_table]


class Bench:
    def __init__(self, records: list[StreamRecord], batch: int) -> None:
        self.chunks = [records[i : i + batch] for i in range(0, len(records), batch)]
        self.records = len(records)
        self.dynamodb = boto3.client("dynamodb")
        self.redis = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
        self.scripts = [self.redis.register_script(_MERGE), self.redis.register_script(_ADVANCE)]
        self.cloudformation = boto3.client("cloudformation")
        self.kinesis = boto3.client("kinesis")

    def fresh(self) -> StackResources:
        """New tables; an empty Redis marked ready (a live one is; an unready one makes the processor rebuild)."""
        resources = stack.deploy_local(self.cloudformation, self.kinesis, f"bench-{uuid.uuid4().hex[:8]}")
        self.redis.flushdb()
        self.redis.set(keys.READY, int(time.time()))
        return resources

    def capture(self) -> tuple[Capture, StackResources]:
        resources = self.fresh()
        capture = Capture()
        stores, _ = build_stores(RecordingDynamoDB(self.dynamodb, capture), RecordingRedis(self.redis, capture),
                                 resources)
        for chunk in self.chunks:
            capture.new_batch()
            process_batch(chunk, stores)
        return capture, resources

    def processor(self) -> tuple[float, tuple[int, int]]:
        resources = self.fresh()
        stores, _ = build_stores(self.dynamodb, self.redis, resources)
        began = time.perf_counter()
        for chunk in self.chunks:
            process_batch(chunk, stores)
        rate = self.records / (time.perf_counter() - began)
        return rate, self.check(resources)

    def plain_loop(self, capture: Capture, captured_on: StackResources, pool: WritePool | None) -> tuple[float, Any]:
        resources = self.fresh()
        tables = dict(zip(table_names(captured_on), table_names(resources), strict=True))
        batches = [
            [(phase.kind[0], [call if phase.kind[0] == "redis" else retarget(call, tables) for call in phase.calls])
             for phase in phases]
            for phases in capture.batches
        ]
        began = time.perf_counter()
        for phases in batches:
            for operation, calls in phases:
                if operation == "redis":
                    for stack_ in calls:
                        self._pipeline(stack_)
                    continue
                method = getattr(self.dynamodb, operation)

                def one(kwargs: dict[str, Any], method: Any = method) -> None:
                    try:
                        method(**kwargs)
                    except ClientError as exc:
                        if not is_condition_failure(exc):
                            raise

                if pool is None:
                    for kwargs in calls:
                        one(kwargs)
                else:
                    pool.map(one, calls)
        rate = self.records / (time.perf_counter() - began)
        return rate, self.check(resources)

    def _pipeline(self, commands: Sequence[tuple[tuple[Any, ...], dict[str, Any]]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for args, options in commands:
            if args[0] == "EVALSHA":
                pipe.scripts.update(self.scripts)  # so the pipeline checks the scripts first, as the mirror's does
            pipe.execute_command(*args, **options)
        pipe.execute()

    def check(self, resources: StackResources) -> tuple[int, int]:
        """Items in the events table, and events in the Redis minute totals."""
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=resources.events_table, Select="COUNT")
        items = sum(page["Count"] for page in pages)
        totals = sum(int(self.redis.hget(key, "events") or 0)
                     for key in self.redis.scan_iter(f"{keys.PREFIX}:m:*") if ":w:" not in key)
        return items, totals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1000, help="distinct changes (plus 10%% duplicates)")
    parser.add_argument("--batch", type=int, default=100, help="records per process_batch call")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    records = stream_records(args.records)

    with tempfile.TemporaryDirectory() as state:
        ports = Ports(
            kinesis=free_port(), kinesis_tls=free_port(), moto=free_port(), redis=free_port(), api=free_port()
        )
        local = LocalStack(state_dir=Path(state), ports=ports, stack_name="bench")
        try:
            local.start_infrastructure()
            os.environ.update(local.env)
            bench = Bench(records, args.batch)
            capture, captured_on = bench.capture()
            pool = WritePool()
            variants: dict[str, Callable[[], tuple[float, Any]]] = {
                "processor": bench.processor,
                "plain loop": lambda: bench.plain_loop(capture, captured_on, None),
                "plain loop, pooled": lambda: bench.plain_loop(capture, captured_on, pool),
            }
            names = list(variants)
            rates: dict[str, list[float]] = {name: [] for name in names}
            checks: set[tuple[str, Any]] = set()
            for round_ in range(args.rounds):
                order = names[round_ % len(names):] + names[: round_ % len(names)]
                for name in order:
                    rate, check = variants[name]()
                    rates[name].append(rate)
                    checks.add((name, check))
        finally:
            local.stop()

    calls = [phase for phases in capture.batches for phase in phases]
    counted = {op: sum(len(p.calls) for p in calls if p.kind[0] == op)
               for op in dict.fromkeys(p.kind[0] for p in calls)}
    print(f"{len(records):,} records ({args.records:,} distinct changes + duplicates), batches of {args.batch}, "
          f"{args.rounds} rounds in rotating order, fresh tables and an empty Redis per run")
    print("calls per run (captured from the processor, replayed by the plain loops): "
          + ", ".join(f"{op} {n:,}" for op, n in counted.items()))
    for name in names:
        print(f"  {name:<20} median {statistics.median(rates[name]):,.0f} records/s "
              f"(runs: {', '.join(f'{r:,.0f}' for r in rates[name])})")
    ours = statistics.median(rates["processor"])
    for name in names[1:]:
        ratio = ours / statistics.median(rates[name])
        paired = [r / b for r, b in zip(rates["processor"], rates[name], strict=True)]
        print(f"  ratio processor / {name}: {ratio:.2f} of the medians, "
              f"per round {', '.join(f'{p:.2f}' for p in paired)} "
              f"(goal >= {GOAL:.2f}: {'met' if ratio >= GOAL else 'NOT met'})")
    print("checks (events table items, Redis total events) per variant: "
          + "; ".join(f"{name}: {sorted(check for n, check in checks if n == name)}" for name in names))


if __name__ == "__main__":
    main()
