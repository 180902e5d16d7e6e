"""`/v1/stream` fan-out: the delay from a change being processed to its delivery to each of 200 stream clients,
and what 200 open streams do to the query endpoints, on the local stack (the launcher's redis-server, moto and
kinesis-mock; the API under gunicorn with api/serving.py, 2 workers), against baselines from the same run.

For each worker class (`gevent`: api/serving.py's; `gthread`: its 8 threads per worker, for comparison):
1. baseline: `GET /v1/stats?window=1h` from one client, `--queries` times, with no stream open; then the fan-out
   delay to one stream client;
2. `--clients` stream clients connect (how many got their first bytes within 10 s is reported); changes are
   appended to the live feed through the processor's own script (`kcl_app.change_feed`) at `--rate` a second
   for `--seconds`, in batches every 250 ms as the processors write them, while one client keeps querying;
3. figures: delay processed (the append returned) -> received by each client, p50/p99/max over every
   (client, change); changes each client missed; query latency p50/p99 and failures beside the baseline.

The clients run in this process (asyncio, httpx) on the same 2 cores as the API and Redis: the delay includes
their own scheduling. Run: .venv/bin/python benchmarks/stream_fanout.py [--clients 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

from kcl_app import change_feed
from kcl_app.handler import BatchOutcome, ProcessedChange, StreamRecord, prepare
from wikitide import keys
from wikitide.localstack import services
from wikitide.localstack.launcher import LocalStack
from wikitide.localstack.services import Ports, free_port

REPO = Path(__file__).resolve().parents[1]
RECORDING = REPO.parent / "shared" / "data" / "recentchange" / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson"
WORKER_CLASSES = {"gevent": "api.serving.JsonErrorGeventWorker", "gthread": "api.serving.JsonErrorWorker"}
_MARK = re.compile(r'"bench_n": (\d+)')


def changes() -> list[ProcessedChange]:
    lines = RECORDING.read_bytes().splitlines()
    now_ms = int(time.time() * 1000)
    records = [StreamRecord(line, "shardId-0", i, now_ms) for i, line in enumerate(lines)]
    ready, _ = prepare(records, BatchOutcome())
    return ready


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Publisher:
    """Appends changes as the processors do, remembering when each append returned."""

    def __init__(self, client: redis.Redis, items: list[ProcessedChange]) -> None:
        self._client = client
        self._script = client.register_script(change_feed.APPEND)
        self._items = items
        self.sent_at: dict[int, float] = {}
        self._next = 0

    def publish(self, count: int) -> None:
        # The recording's changes again and again, each under a key of its own (the feed keeps a key once).
        batch = []
        for n in range(self._next, self._next + count):
            item = self._items[n % len(self._items)]
            batch.append(dataclasses.replace(item, key=f"{item.key}#{n}", doc={**item.doc, "bench_n": n}))
        for call_keys, args in change_feed.append_calls(batch):
            self._script(keys=call_keys, args=args)
        now = time.time()
        for offset in range(len(batch)):
            self.sent_at[self._next + offset] = now
        self._next += len(batch)

    def run(self, rate: float, seconds: float) -> None:
        per_batch = max(1, round(rate / 4))
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            self.publish(per_batch)
            time.sleep(0.25)


async def stream_client(host: str, port: int, ready: asyncio.Event, received: dict[int, float],
                        connected: list[int], refused: list[str], stop: asyncio.Event) -> None:
    """One SSE client as light as `wrk`'s: a plain HTTP/1.1 GET on an asyncio socket, the body scanned for the
    benchmark's marks (httpx's async client cost more CPU than the API itself at 200 streams on 2 cores)."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return
    try:
        writer.write(f"GET /v1/stream HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
        await writer.drain()
        tail = ""
        while not stop.is_set():
            data = await reader.read(65536)
            if not data:
                return
            if not ready.is_set():
                if not data.startswith(b"HTTP/1.1 200"):
                    refused.append(data.split(b"\r\n", 1)[0].decode("latin-1"))
                    return
                ready.set()
                connected.append(1)
            now = time.time()
            text = tail + data.decode("utf-8", "replace")
            for match in _MARK.finditer(text):
                received.setdefault(int(match.group(1)), now)
            tail = text[-40:]
    except (OSError, asyncio.CancelledError):
        return
    finally:
        writer.close()


def query_latencies(base: str, count: int, stop: threading.Event | None = None) -> tuple[list[float], int]:
    """Sequential `/v1/stats?window=1h` calls: latencies in ms and failures (timeouts, non-200)."""
    latencies, failures = [], 0
    with httpx.Client(timeout=5.0) as http:
        for _ in range(count):
            if stop is not None and stop.is_set():
                break
            started = time.perf_counter()
            try:
                ok = http.get(f"{base}/v1/stats?window=1h").status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append((time.perf_counter() - started) * 1000)
            failures += not ok
            time.sleep(0.02)
    return latencies, failures


async def fan_out(base: str, clients: int, publisher: Publisher, rate: float, seconds: float,
                  queries: int) -> dict[str, Any]:
    host, port = base.removeprefix("http://").split(":")
    stop = asyncio.Event()
    readies = [asyncio.Event() for _ in range(clients)]
    received: list[dict[int, float]] = [{} for _ in range(clients)]
    connected: list[int] = []
    refused: list[str] = []
    tasks = [asyncio.create_task(stream_client(host, int(port), readies[i], received[i], connected, refused, stop))
             for i in range(clients)]
    deadline = time.monotonic() + 10
    while len(connected) < clients and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    first = publisher._next
    query_result: dict[str, Any] = {}

    def load() -> None:
        publisher.run(rate, seconds)

    def query() -> None:
        query_result["latencies"], query_result["failures"] = query_latencies(base, queries, done)

    done = threading.Event()
    querier = threading.Thread(target=query)
    querier.start()
    await asyncio.to_thread(load)
    last = publisher._next
    # Bounded wait for the tail to arrive.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(len(received[i]) < last - first
                                              for i in range(clients) if readies[i].is_set()):
        await asyncio.sleep(0.1)
    done.set()
    await asyncio.to_thread(querier.join)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    delays, missed = [], 0
    for got in (received[i] for i in range(clients) if readies[i].is_set()):
        for n in range(first, last):
            if n in got:
                delays.append((got[n] - publisher.sent_at[n]) * 1000)
            else:
                missed += 1
    return {"connected": len(connected), "changes": last - first, "delays": delays, "missed": missed,
            "refused": sorted(set(refused)), **query_result}


def api_cpu_seconds(master_pid: int) -> float:
    """CPU seconds (user + system) the API's gunicorn workers have used so far: a figure the machine's load
    disturbs less than wall-clock delays."""
    total = 0.0
    for worker in psutil.Process(master_pid).children():
        times = worker.cpu_times()
        total += times.user + times.system
    return total


def report(label: str, result: dict[str, Any]) -> None:
    delays = result["delays"]
    print(f"  {label}: {result['connected']} clients connected (refused: {result['refused'] or 'none'}), "
          f"{result['changes']} changes, "
          f"{len(delays)} deliveries, {result['missed']} missed; delay processed -> delivered "
          f"p50 {percentile(delays, 0.5):.1f} ms, p99 {percentile(delays, 0.99):.1f} ms, "
          f"max {max(delays, default=float('nan')):.1f} ms")
    if "cpu" in result and result["delays"]:
        print(f"  {label}: API workers' CPU {result['cpu']:.2f} s, "
              f"{result['cpu'] / len(result['delays']) * 1e6:.0f} µs per delivery")
    latencies = result.get("latencies", [])
    if latencies:
        print(f"  {label}: /v1/stats?window=1h meanwhile: {len(latencies)} calls, {result['failures']} failed, "
              f"p50 {percentile(latencies, 0.5):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rate", type=float, default=30.0, help="changes a second (the live stream's ~30)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--worker-class", choices=[*WORKER_CLASSES, "both"], default="both")
    args = parser.parse_args()
    items = changes()
    with tempfile.TemporaryDirectory() as state:
        ports = Ports(kinesis=free_port(), kinesis_tls=free_port(), moto=free_port(), redis=free_port(),
                      api=free_port())
        stack = LocalStack(state_dir=Path(state), ports=ports, stack_name="wt-stream-bench")
        try:
            stack.start_infrastructure()
            stack.provision(shard_count=1)
            client = redis.Redis.from_url(stack.env["REDIS_URL"])
            # The read model is ready (as after the processors' first batch): queries read Redis, not DynamoDB.
            client.set(keys.READY, int(time.time()))
            publisher = Publisher(client, items)
            classes = list(WORKER_CLASSES) if args.worker_class == "both" else [args.worker_class]
            for name in classes:
                api_ports = dataclasses.replace(ports, api=free_port())
                # Every client here is 127.0.0.1: the per-client rate limits are off for this measurement.
                env = {**stack.env, "WIKITIDE_RATE_LIMIT_QUERIES": "off", "WIKITIDE_RATE_LIMIT_STREAM": "off"}
                spec = services.api_server(api_ports, env, worker_class=WORKER_CLASSES[name])
                try:
                    stack.supervisor.start(dataclasses.replace(spec, name=f"api-{name}"))
                except RuntimeError:
                    print(stack.supervisor.log_path(f"api-{name}").read_text()[-3000:])
                    raise
                base = f"http://127.0.0.1:{api_ports.api}"
                print(f"worker class {name} ({WORKER_CLASSES[name]}), 2 workers:")
                latencies, failures = query_latencies(base, args.queries)
                print(f"  baseline, no stream open: /v1/stats?window=1h {len(latencies)} calls, {failures} failed, "
                      f"p50 {percentile(latencies, 0.5):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms")
                master = stack.supervisor.pids()[f"api-{name}"]
                for label, clients, seconds, queries in (
                    ("baseline, 1 stream client", 1, min(args.seconds, 10), 0),
                    (f"{args.clients} stream clients", args.clients, args.seconds, args.queries),
                ):
                    cpu = api_cpu_seconds(master)
                    result = asyncio.run(fan_out(base, clients, publisher, args.rate, seconds, queries))
                    report(label, {**result, "cpu": api_cpu_seconds(master) - cpu})
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
