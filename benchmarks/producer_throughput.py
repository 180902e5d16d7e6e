"""Producer throughput and memory, against baselines measured in the same run (this machine is shared and noisy).

1. Parsing: events/s from a local SSE replay through the real SSE client and the producer into a null sink.
   The replay server runs in a process of its own, as EventStreams does: only the producer is measured, and it
   does not share its interpreter lock with the server (printed beside it: the server in the same process).
2. Kinesis: events/s from the same replay into kinesis-mock through the producer, against a plain boto3 loop
   putting the same events in 500-record calls. Both use the `PutRecords` API (the producer's only path);
   kinesis-mock's `PutRecords` slows down as a stream grows, so every run gets a fresh stream, the two sides
   alternate which goes first, and medians are reported.
3. Memory: the peak RSS of a real producer process (`wikitide produce`) while Kinesis is down (kinesis-mock
   stopped with SIGSTOP) and the SSE source keeps offering events, then while the backlog drains.

Run: .venv/bin/python benchmarks/producer_throughput.py [--events N] [--rounds R] [--outage-seconds S]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psutil

from producer.batcher import MAX_BATCH_RECORDS, to_entry
from producer.frames import Frame, load_frames, replay_id
from producer.kinesis_writer import KinesisWriter
from producer.replay import ReplayServer
from producer.service import Producer
from producer.sse_source import read_events
from wikitide.localstack.launcher import LocalStack
from wikitide.localstack.services import Ports, free_port

RECORDING = Path(__file__).resolve().parents[2] / "shared" / "data" / "recentchange" / "ndjson"
REPO = Path(__file__).resolve().parents[1]


def _base_events() -> list[dict[str, Any]]:
    return [json.loads(f.data) for f in load_frames(RECORDING / "kirajano_recentchange_2021-08-27.ndjson")]


def _rekeyed(base: list[dict[str, Any]], n: int) -> Frame:
    event = dict(base[n % len(base)])
    event["meta"] = {**event["meta"], "id": str(uuid.UUID(int=n)), "offset": n}
    if "revision" in event:
        event["revision"] = {**event["revision"], "new": 10_000_000 + n}
    return Frame(data=json.dumps(event, ensure_ascii=False), id=replay_id(n))


def looped_frames(count: int) -> list[Frame]:
    """The recording repeated with re-keyed ids and offsets, so every event is distinct."""
    base = _base_events()
    return [_rekeyed(base, n) for n in range(count)]


def endless_frames() -> Iterator[Frame]:
    base = _base_events()
    return (_rekeyed(base, n) for n in itertools.count())


class NullSink:
    def __init__(self) -> None:
        self.count = 0

    def put(self, entries) -> None:
        self.count += len(entries)


class CountingClient:
    """The boto3 client, remembering each PutRecords call's records."""

    def __init__(self, client) -> None:
        self._client = client
        self.plan: list[list[dict]] = []

    @property
    def calls(self) -> int:
        return len(self.plan)

    def put_records(self, **kwargs):
        self.plan.append(kwargs["Records"])
        return self._client.put_records(**kwargs)


def _serve(frames: list[Frame], urls: Any, done: Any) -> None:
    with ReplayServer(lambda: frames, close_at_end=True) as server:
        urls.send(server.url)
        done.wait()


@contextlib.contextmanager
def replay_in_own_process(frames: list[Frame]) -> Iterator[str]:
    """A replay server in a forked process (the frames are inherited, not pickled); yields its URL."""
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    done = context.Event()
    server = context.Process(target=_serve, args=(frames, sending, done), daemon=True)
    server.start()
    try:
        if not receiving.poll(30):
            raise RuntimeError("the replay server process did not start")
        yield receiving.recv()
    finally:
        done.set()
        server.join(timeout=10)
        if server.is_alive():
            server.kill()
            server.join()


@contextlib.contextmanager
def replay_in_this_process(frames: list[Frame]) -> Iterator[str]:
    with ReplayServer(lambda: frames, close_at_end=True) as server:
        yield server.url


def through_producer(
    frames: list[Frame], writer, *, served_by=replay_in_this_process, cpu: list[float] | None = None
) -> float:
    """Events/s through the producer; appends to `cpu` this process's CPU microseconds per event, a figure a
    loaded machine disturbs less than a rate (meaningful with the server in its own process)."""
    with served_by(frames) as url:
        stop = threading.Event()
        events = read_events(url, "wikitide-benchmark", should_stop=stop.is_set)
        producer = Producer(events, writer, linger=0.05)
        runner = threading.Thread(target=producer.run, args=(stop,))
        began, cpu_began = time.perf_counter(), time.process_time()
        runner.start()
        while producer.stats.written < len(frames) and runner.is_alive():
            time.sleep(0.005)
        elapsed = time.perf_counter() - began
        if cpu is not None:
            cpu.append((time.process_time() - cpu_began) / len(frames) * 1e6)
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


def _runs(rates: list[float]) -> str:
    return ", ".join(f"{r:,.0f}" for r in rates)


def replay_plan(plan: list[list[dict]], client, stream: str) -> float:
    """A plain loop making exactly the calls the producer made (same records, same grouping)."""
    began = time.perf_counter()
    for records in plan:
        client.put_records(StreamName=stream, Records=records)
    return sum(len(records) for records in plan) / (time.perf_counter() - began)


def compare_kinesis(events: int, rounds: int, kinesis_mock: psutil.Process) -> None:
    """Three sides on fresh streams, their order rotated every round: a plain loop of 500-record calls (the
    baseline of the goal), the producer, and a plain loop replaying the producer's own calls of the previous
    producer run (what the producer costs beyond the calls its per-page order needs)."""
    client = boto3.client("kinesis")
    frames = looped_frames(events)
    rates: dict[str, list[float]] = {"baseline": [], "producer": [], "same calls": []}
    calls: dict[str, list[int]] = {side: [] for side in rates}
    cpu: dict[str, list[float]] = {side: [] for side in rates}
    plan: list[list[dict]] = []
    orders = [["producer", "baseline", "same calls"], ["baseline", "same calls", "producer"],
              ["same calls", "producer", "baseline"]]
    for n in range(rounds):
        for side in orders[n % 3] if n else orders[0]:
            counting = CountingClient(client)
            stream = fresh_stream(client)
            before = sum(kinesis_mock.cpu_times()[:2])
            if side == "baseline":
                rates[side].append(plain_boto3_loop(frames, counting, stream))
            elif side == "producer":
                rates[side].append(through_producer(frames, KinesisWriter(counting, stream)))
            else:
                rates[side].append(replay_plan(plan, counting, stream))
            if side == "producer":
                plan = counting.plan
            cpu[side].append(sum(kinesis_mock.cpu_times()[:2]) - before)
            calls[side].append(counting.calls)
    print(f"kinesis-mock, PutRecords API, {events:,} events per run, fresh stream each run, {rounds} rounds "
          "(order rotated):")
    labels = {"baseline": "plain boto3 loop, 500-record calls", "producer": "producer (SSE replay -> PutRecords)",
              "same calls": "plain boto3 loop, the producer's calls"}
    for side, label in labels.items():
        print(f"  {label}: median {statistics.median(rates[side]):,.0f} events/s (runs: {_runs(rates[side])}; "
              f"{statistics.median(calls[side]):.0f} calls; kinesis-mock CPU {statistics.median(cpu[side]):.2f} s)")
    median = {side: statistics.median(values) for side, values in rates.items()}
    print(f"  ratio producer / 500-record loop: {median['producer'] / median['baseline']:.2f} (goal >= 0.90)")
    print(f"  ratio producer / loop of the same calls: {median['producer'] / median['same calls']:.2f}")


def producer_rss_under_outage(stack: LocalStack, outage: float, drain: float) -> None:
    """Peak RSS of a `wikitide produce` process while kinesis-mock is stopped and the source keeps sending."""
    stack.provision()
    kinesis_pid = stack.supervisor.pids()["kinesis-mock"]
    with ReplayServer(endless_frames) as server:
        command = [sys.executable, "-m", "wikitide", "produce", "--source", f"sse:{server.url}"]
        env = {**os.environ, **stack.env, "WIKITIDE_STACK": stack.stack_name}
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        watched = psutil.Process(process.pid)
        peaks: dict[str, float] = {}

        def sample(phase: str, seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end and process.poll() is None:
                peaks[phase] = max(peaks.get(phase, 0.0), watched.memory_info().rss / 2**20)
                time.sleep(0.05)

        try:
            sample("flowing", 5.0)
            sent_before = server.frames_sent
            os.kill(kinesis_pid, signal.SIGSTOP)
            try:
                sample("kinesis down", outage)
                sent_during = server.frames_sent - sent_before
            finally:
                os.kill(kinesis_pid, signal.SIGCONT)
            sample("draining", drain)
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
    final = next((line for line in stderr.decode(errors="replace").splitlines() if "stopped: read" in line), "")
    print("producer process RSS, peak per phase: "
          + ", ".join(f"{phase} {mib:.0f} MiB" for phase, mib in peaks.items())
          + f" (goal < 150 MB); the source sent {server.frames_sent:,} events in all, {sent_during:,} of them "
          f"during the {outage:.0f}-s outage; producer exit code {process.returncode}; {final.split(': ', 1)[-1]}")
    if process.returncode != 0:
        print(stderr.decode(errors="replace")[-1500:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3000, help="events per Kinesis run")
    parser.add_argument("--parse-events", type=int, default=50_000, help="events for the null-sink run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--outage-seconds", type=float, default=20.0, help="how long Kinesis is down for the RSS run")
    parser.add_argument("--only", choices=["parse", "kinesis", "rss"], action="append", help="run only these parts")
    args = parser.parse_args()
    parts = set(args.only or ["parse", "kinesis", "rss"])
    print(f"load average at the start (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} CPUs")

    if "parse" in parts:
        parse_frames = looped_frames(args.parse_events)
        parse_rates, shared_rates, cpu = [], [], []
        for _ in range(args.rounds):
            parse_rates.append(through_producer(parse_frames, NullSink(), served_by=replay_in_own_process, cpu=cpu))
            shared_rates.append(through_producer(parse_frames, NullSink()))
        del parse_frames
        print(f"SSE -> producer -> null sink: median {statistics.median(parse_rates):,.0f} events/s "
              f"(runs: {_runs(parse_rates)}; goal >= 20,000); producer CPU per event: median "
              f"{statistics.median(cpu):.1f} us (runs: {', '.join(f'{c:.1f}' for c in cpu)})")
        print(f"  the same with the replay server in the producer's process: median "
              f"{statistics.median(shared_rates):,.0f} events/s (runs: {_runs(shared_rates)})")
    if not parts & {"kinesis", "rss"}:
        return

    with tempfile.TemporaryDirectory() as state:
        ports = Ports(
            kinesis=free_port(), kinesis_tls=free_port(), moto=free_port(), redis=free_port(), api=free_port()
        )
        stack = LocalStack(state_dir=Path(state), ports=ports, stack_name=f"bench-{uuid.uuid4().hex[:6]}")
        stack.start_infrastructure()
        os.environ.update(stack.env)
        try:
            if "kinesis" in parts:
                compare_kinesis(args.events, args.rounds, psutil.Process(stack.supervisor.pids()["kinesis-mock"]))
            if "rss" in parts:
                producer_rss_under_outage(stack, args.outage_seconds, drain=10.0)
        finally:
            stack.stop()
    print(f"load average at the end (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
