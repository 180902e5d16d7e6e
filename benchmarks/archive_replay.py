"""The archive on the local stack: delivery delay, and replay throughput against a plain loop in the same run.

1. Delivery delay: recorded events (the recording of `tests/`, in order) are written by the producer's writer at a
   steady rate (each stamped with its receive time as the producer stamps it) while the archive forwarder runs
   with `--buffer-seconds`; a poller lists the bucket every 100 ms. An event's delay is from its receive time
   to the first listing that shows its object. The forwarder's buffer bounds it from below: it is printed beside.
2. Replay throughput: `wikitide.archive.replay` (S3 objects -> the producer's writer -> kinesis-mock `PutRecords`)
   against a plain loop that reads the same objects and calls `PutRecords` with 500 records a call, into a fresh
   2-shard stream per run (kinesis-mock's `PutRecords` slows as a stream grows), the order of the two sides
   rotated every round; medians of the rounds. Both sides read S3 and use the `PutRecords` API.

Run: .venv/bin/python benchmarks/archive_replay.py [--events N] [--rate R] [--buffer-seconds S] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from producer.batcher import MAX_BATCH_RECORDS, to_entry
from producer.frames import load_frames
from producer.kinesis_writer import KinesisWriter
from wikitide import stack
from wikitide.archive.forwarder import FirehoseSink, Forwarder, KinesisReader, ShardPositions
from wikitide.archive.local import delivery_stream_name, ensure_delivery_stream
from wikitide.archive.objects import Line, S3Archive, lines_of, read_range
from wikitide.archive.replay import ReplayPosition, entry_of, replay
from wikitide.aws import make_adapter_client, make_client
from wikitide.envelope import open_record
from wikitide.localstack.launcher import LocalStack
from wikitide.localstack.services import Ports, free_port
from wikitide.settings import Settings

RECORDING = Path(__file__).resolve().parents[2] / "shared" / "data" / "recentchange" / "sse" / (
    "kirajano_recentchange_2021-08-27.sse")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _fresh_stream(kinesis: Any) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=name, ShardCount=2)
    while kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        time.sleep(0.1)
    return name


def measure_delay(resources: stack.StackResources, delivery: str, events: int, rate: float, buffer_seconds: float,
                  state: Path) -> tuple[list[float], int]:
    settings = Settings.from_env()
    s3 = boto3.client("s3")
    reader = KinesisReader(make_adapter_client(settings, "kinesis"), resources.stream_name)
    positions = ShardPositions(state / "positions.json", resources.stream_name, reader.created())
    forwarder = Forwarder(reader, FirehoseSink(boto3.client("firehose"), delivery), positions,
                          buffer_seconds=buffer_seconds)
    listed: dict[str, float] = {}
    stop, polling = threading.Event(), threading.Event()

    def poll() -> None:
        while not polling.is_set():
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=resources.archive_bucket, Prefix="raw/"):
                for item in page.get("Contents", []):
                    listed.setdefault(item["Key"], time.time())
            polling.wait(0.1)

    threads = [threading.Thread(target=forwarder.run, args=(stop,)), threading.Thread(target=poll)]
    for thread in threads:
        thread.start()
    writer = KinesisWriter(boto3.client("kinesis"), resources.stream_name)
    frames = load_frames(RECORDING)[:events]
    per_call = max(1, int(rate / 4))
    began = time.monotonic()
    for start in range(0, len(frames), per_call):
        now_ms = int(time.time() * 1000)
        writer.put([to_entry(f.data, f.id, received_ms=now_ms) for f in frames[start:start + per_call]])
        ahead = began + (start + per_call) / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    deadline = time.monotonic() + 120 + buffer_seconds
    while forwarder.stats.records < len(frames) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # one more listing after the last object
    stop.set()
    polling.set()
    for thread in threads:
        thread.join(timeout=60)
    delays = []
    for key, seen in listed.items():
        lines = lines_of(key, s3.get_object(Bucket=resources.archive_bucket, Key=key)["Body"].read())
        assert isinstance(lines, list), (key, lines)
        delays += [seen * 1000 - (open_record(line).received_ms or 0) for line in lines]
    return delays, forwarder.stats.objects


def run_replay(archive: S3Archive, kinesis: Any, start: datetime, end: datetime,
               state: Path) -> tuple[float, int, int]:
    stream = _fresh_stream(kinesis)
    position = ReplayPosition(state / uuid.uuid4().hex, "bench", start, end, stream)
    began = time.perf_counter()
    result = replay(archive, KinesisWriter(kinesis, stream), position, start, end, on_corrupt=print,
                    on_progress=lambda n, key: None)
    return time.perf_counter() - began, result.records, result.calls


def run_plain(archive: S3Archive, kinesis: Any, start: datetime, end: datetime) -> tuple[float, int, int]:
    stream = _fresh_stream(kinesis)
    began = time.perf_counter()
    lines: list[Line] = list(read_range(archive, start, end, print))
    sent = calls = 0
    for index in range(0, len(lines), MAX_BATCH_RECORDS):
        records = [{"Data": e.data, "PartitionKey": e.partition_key}
                   for e in map(entry_of, lines[index:index + MAX_BATCH_RECORDS])]
        answer = kinesis.put_records(StreamName=stream, Records=records)
        assert answer["FailedRecordCount"] == 0
        sent += len(records)
        calls += 1
    return time.perf_counter() - began, sent, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1500)
    parser.add_argument("--rate", type=float, default=100.0, help="Events a second written during the delay run.")
    parser.add_argument("--buffer-seconds", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        ports = Ports(kinesis=free_port(), kinesis_tls=free_port(), moto=free_port(), redis=free_port(),
                      api=free_port())
        local = LocalStack(state_dir=Path(tmp), ports=ports, stack_name="bench-archive")
        local.start_infrastructure()
        try:
            os.environ.update(local.env)
            settings = Settings.from_env()
            resources = stack.deploy_local(make_client(settings, "cloudformation"), make_client(settings, "kinesis"),
                                           local.stack_name)
            delivery = delivery_stream_name(local.stack_name)
            ensure_delivery_stream(boto3.client("firehose"), delivery, resources.archive_bucket)
            started = datetime.now(UTC) - timedelta(minutes=1)
            delays, objects = measure_delay(resources, delivery, args.events, args.rate, args.buffer_seconds,
                                            Path(tmp))
            print(f"delivery delay, {len(delays)} events at {args.rate:.0f}/s, forwarder buffer "
                  f"{args.buffer_seconds:.1f} s, {objects} objects: p50 {_percentile(delays, 0.5):.0f} ms, "
                  f"p99 {_percentile(delays, 0.99):.0f} ms, max {max(delays):.0f} ms")
            end = datetime.now(UTC) + timedelta(minutes=1)
            archive = S3Archive(boto3.client("s3"), resources.archive_bucket)
            kinesis = boto3.client("kinesis")
            put_calls = [0]

            def count_call(**_: Any) -> None:
                put_calls[0] += 1

            kinesis.meta.events.register("before-call.kinesis.PutRecords", count_call)
            rates: dict[str, list[float]] = {"replay": [], "plain": []}
            for round_index in range(args.rounds):
                sides = ["replay", "plain"] if round_index % 2 == 0 else ["plain", "replay"]
                for side in sides:
                    put_calls[0] = 0
                    if side == "replay":
                        seconds, records, calls = run_replay(archive, kinesis, started, end, Path(tmp))
                    else:
                        seconds, records, calls = run_plain(archive, kinesis, started, end)
                    rates[side].append(records / seconds)
                    print(f"round {round_index + 1} {side}: {records} records in {put_calls[0]} PutRecords calls "
                          f"({calls} batches), {seconds:.2f} s "
                          f"({records / seconds:.0f}/s), load {os.getloadavg()[0]:.1f}")
            replay_rate, plain_rate = statistics.median(rates["replay"]), statistics.median(rates["plain"])
            print(f"replay {replay_rate:.0f} records/s, plain PutRecords loop {plain_rate:.0f} records/s "
                  f"(medians of {args.rounds}): ratio {replay_rate / plain_rate:.2f} (goal >= 0.90)")
        finally:
            local.stop()
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
