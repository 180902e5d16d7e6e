"""Producer throughput, against a baseline measured in the same run (this machine is shared and noisy).

1. Parsing: events/s from a local SSE replay through the real SSE client and the producer into a null sink.
2. Kinesis: events/s from the same replay into kinesis-mock through the producer (PutRecords), against a plain
   boto3 loop making the same PutRecords calls with the same payloads; each run on a fresh stream, alternated,
   medians reported (kinesis-mock's PutRecords slows down as a stream grows).
3. Peak RSS of this process.

Run: .venv/bin/python benchmarks/producer_throughput.py [--events N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import boto3

from producer.batcher import MAX_BATCH_RECORDS, to_entry
from producer.frames import Frame, load_frames, replay_id
from producer.kinesis_writer import KinesisWriter
from producer.replay import ReplayServer
from producer.service import Producer
from producer.sse_source import read_events
from wikitide.localstack.launcher import LocalStack
from wikitide.localstack.services import Ports, free_port

RECORDING = Path(__file__).resolve().parents[2] / "shared" / "data" / "recentchange" / "ndjson"


def looped_frames(count: int) -> list[Frame]:
    """The recording repeated with re-keyed ids, so every event is distinct."""
    base = [json.loads(f.data) for f in load_frames(RECORDING / "kirajano_recentchange_2021-08-27.ndjson")]
    frames = []
    for n in range(count):
        event = dict(base[n % len(base)])
        event["meta"] = {**event["meta"], "id": str(uuid.UUID(int=n))}
        if "revision" in event:
            event["revision"] = {**event["revision"], "new": 10_000_000 + n}
        frames.append(Frame(data=json.dumps(event, ensure_ascii=False), id=replay_id(n)))
    return frames


class NullSink:
    def __init__(self) -> None:
        self.count = 0

    def put(self, entries) -> None:
        self.count += len(entries)


def through_producer(frames: list[Frame], writer) -> float:
    with ReplayServer(lambda: frames, close_at_end=True) as server:
        stop = threading.Event()
        events = read_events(server.url, "wikitide-benchmark", should_stop=stop.is_set)
        producer = Producer(events, writer, linger=0.05)
        runner = threading.Thread(target=producer.run, args=(stop,))
        began = time.perf_counter()
        runner.start()
        while producer.stats.written < len(frames) and runner.is_alive():
            time.sleep(0.005)
        elapsed = time.perf_counter() - began
        stop.set()
        runner.join(timeout=30)
    return len(frames) / elapsed


def plain_boto3_loop(frames: list[Frame], client, stream: str) -> float:
    entries = [to_entry(f.data, f.id) for f in frames]
    began = time.perf_counter()
    for start in range(0, len(entries), MAX_BATCH_RECORDS):
        chunk = entries[start : start + MAX_BATCH_RECORDS]
        records = [{"Data": e.data, "PartitionKey": e.partition_key} for e in chunk]
        client.put_records(StreamName=stream, Records=records)
    return len(entries) / (time.perf_counter() - began)


def fresh_stream(client) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    client.create_stream(StreamName=name, ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    return name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3000, help="events per Kinesis run")
    parser.add_argument("--parse-events", type=int, default=50_000, help="events for the null-sink run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    parse_frames = looped_frames(args.parse_events)
    parse_rates = [through_producer(parse_frames, NullSink()) for _ in range(args.rounds)]
    print(f"SSE -> producer -> null sink: median {statistics.median(parse_rates):,.0f} events/s "
          f"(runs: {', '.join(f'{r:,.0f}' for r in parse_rates)}; goal >= 20,000)")

    with tempfile.TemporaryDirectory() as state:
        ports = Ports(
            kinesis=free_port(), kinesis_tls=free_port(), moto=free_port(), redis=free_port(), api=free_port()
        )
        stack = LocalStack(state_dir=Path(state), ports=ports, stack_name="bench")
        stack.start_infrastructure()
        os.environ.update(stack.env)
        try:
            client = boto3.client("kinesis")
            frames = looped_frames(args.events)
            ours, baseline = [], []
            for _ in range(args.rounds):
                baseline.append(plain_boto3_loop(frames, client, fresh_stream(client)))
                ours.append(through_producer(frames, KinesisWriter(client, fresh_stream(client))))
        finally:
            stack.stop()
    ratio = statistics.median(ours) / statistics.median(baseline)
    print(f"kinesis-mock PutRecords, {args.events} events per run, fresh stream each run:")
    print(f"  plain boto3 loop: median {statistics.median(baseline):,.0f} events/s "
          f"(runs: {', '.join(f'{r:,.0f}' for r in baseline)})")
    print(f"  producer (SSE replay -> PutRecords): median {statistics.median(ours):,.0f} events/s "
          f"(runs: {', '.join(f'{r:,.0f}' for r in ours)})")
    print(f"  ratio producer / baseline: {ratio:.2f} (goal >= 0.90)")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB "
          f"(it also holds {args.parse_events:,} frames in memory for the replay server)")


if __name__ == "__main__":
    main()
