"""The API under load with a generated day in Redis: requests/s and latency per query, against a minimal Flask
endpoint returning a constant, served the same way in the same run; and Redis's slowest command meanwhile.

Each query runs twice: with the answers kept 1 s per process (the default, `WIKITIDE_ANSWER_CACHE_SECONDS`), and
with every request reading Redis; then once more kept, paced at `--paced` requests/s (2,000) from the same
connections (random pauses between a connection's requests: `benchmarks/wrk_paced.lua`), for the latency at that
rate: an unpaced closed loop of 50 connections waits 50 / throughput per request on average, so its p99 says how
fast the server is, not how long a request waits at a given rate. The constant endpoint runs first and last
(the ratios are to the mean of the two) and paced too. The
per-client rate limit stays on (counted in Redis) at a limit no run reaches; one more run of the first query,
kept, has no rate limit, so the limiter's own cost is read in the same run.

Steps: start a redis-server of its own; load `tests/day.py`'s generated day through the processor's Redis path
(`--events-per-minute` sets its volume; 900 wikis whatever it is); then, one after the other, serve
`benchmarks.api_load_app:queries()` (the API's production read path over that Redis) and
`benchmarks.api_load_app:constant()` with gunicorn (`-c python:api.serving`, `--workers` processes), and drive each
URL with Debian's `wrk` (another process; `--connections` connections, `--seconds` each, `--latency`). Redis's
slow log records every command slower than `--slowlog-us` during each run. Everything started is stopped.

With `--store dynamodb` the answers come from DynamoDB instead, as while Redis is empty or down (the API's fallback,
`api/fallback_stats.py`): the launcher's emulators start (moto, kinesis-mock, redis-server), a stack is deployed
into them, the day is loaded through the processor's real stores (DynamoDB and Redis), then Redis is emptied, so
the API finds it not ready and reads DynamoDB; the limiter still counts in that Redis. moto's requests per answer
(its `/_wikitide/calls`) are printed beside each run. moto answers a read in milliseconds, from one thread: these
figures are moto's, far below DynamoDB's own, and say what the fallback costs per request, not how fast it is on AWS.

Run: `.venv/bin/python benchmarks/api_load.py [--store redis|dynamodb]` (needs `wrk`: `apt-get install -y wrk`).
The machine is shared: the load average is printed; the ratio to the constant endpoint is the figure to compare,
not the absolute rates. wrk runs on the same cores as gunicorn and Redis (and moto), so every figure includes the
load generator's share of the CPU.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.day, when run as a script
from tests.day import generate, load, load_into  # noqa: E402
from wikitide import keys, stack  # noqa: E402
from wikitide.localstack.launcher import LocalStack  # noqa: E402
from wikitide.localstack.moto_server import CALLS_PATH  # noqa: E402
from wikitide.localstack.services import Ports, free_port, port_open, redis_server  # noqa: E402
from wikitide.localstack.supervisor import Supervisor  # noqa: E402

QUERIES = [
    "/v1/stats?window=1h",
    "/v1/pages/top?window=24h",
    "/v1/trending?window=1h",
    "/v1/edits/recent",
    "/v1/wikis?window=24h",
    "/v1/edits/recent?editor=human&namespace=0&limit=20",
]
# From DynamoDB: what the fallback answers. The wikis of a window, trending and the top pages of more than an hour
# of edits wait for Redis (503 with Retry-After, `api/dynamo_stats.py`); the run checks that they say so.
DYNAMODB_QUERIES = [
    "/v1/stats?window=1h",
    "/v1/pages/top?window=1h",
    "/v1/edits/recent",
    "/v1/edits/recent?editor=human&namespace=0&limit=20",
]
OWN_COMMANDS = {"SLOWLOG", "CONFIG"}
REDIS_ONLY = ["/v1/pages/top?window=24h", "/v1/trending?window=1h", "/v1/wikis?window=24h"]
CONSTANT = "/constant"
PACED_SCRIPT = Path(__file__).with_name("wrk_paced.lua")
# The production default (each process keeps an answer for 1 s: `api/answer_cache.py`), then every request read.
ANSWER_CACHE_SECONDS = (1.0, 0.0)


@dataclass
class Run:
    path: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    slowest_redis_us: int | None
    slowest_command: str
    moto_per_request: float | None = None


@contextmanager
def own_redis(prefix: str) -> Iterator[redis.Redis]:
    """A redis-server of the benchmark's own on a free port, stopped when the block ends; a client of it that
    decodes answers."""
    with tempfile.TemporaryDirectory(prefix=prefix) as state:
        supervisor = Supervisor(Path(state) / "logs")
        port = free_port()
        supervisor.start(redis_server(Ports(redis=port), Path(state)))
        try:
            if not port_open(port):
                sys.exit("redis-server did not start")
            yield redis.Redis(port=port, decode_responses=True)
        finally:
            supervisor.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events-per-minute", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slowlog-us", type=int, default=100)
    parser.add_argument("--paced", type=int, default=2000,
                        help="also run each kept query at about this many requests/s (0: not)")
    parser.add_argument("--store", choices=("redis", "dynamodb"), default="redis",
                        help="answer from Redis (the read model) or from DynamoDB with Redis empty (the fallback)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    if args.store == "dynamodb":
        report(from_dynamodb(args), args)
        return
    with own_redis("api-load-") as client:
        port = client.connection_pool.connection_kwargs["port"]
        started = time.monotonic()
        events = generate(events_per_minute=args.events_per_minute)
        client.config_set("slowlog-log-slower-than", 1000)
        client.config_set("slowlog-max-len", 100_000)
        client.slowlog_reset()
        load(client, events)
        slow = Counter(_words(entry)[0] for entry in client.slowlog_get(100_000))
        slowest = max(client.slowlog_get(100_000), key=lambda entry: entry["duration"], default=None)
        client.set(keys.READY, int(time.time()))  # what a rebuild leaves: the API reads Redis
        print(f"loaded {len(events):,} events ({len({(e['wiki'], e['title']) for e in events}):,} pages, "
              f"{len({e['wiki'] for e in events})} wikis) in {time.monotonic() - started:.0f} s; Redis "
              f"{client.info('memory')['used_memory_human']}; Redis commands over 1 ms while loading: "
              f"{dict(slow) or 'none'}" + (f", the slowest {slowest['duration']} µs ({' '.join(_words(slowest))})"
                                           if slowest else ""))
        url = f"redis://127.0.0.1:{port}/0"
        # The constant endpoint runs first and last: the baseline is their mean, so a machine that drifts
        # during the run moves both ends of the ratio alike (and the two say how much it drifted).
        runs = [measure(client, url, "benchmarks.api_load_app:constant()", CONSTANT, args, 0)]
        runs += [measure(client, url, "benchmarks.api_load_app:queries()", path, args, cache_seconds)
                 for cache_seconds in ANSWER_CACHE_SECONDS for path in QUERIES]
        # The latency at the rate (2,000 requests/s from the same connections), kept, as served.
        runs += [measure(client, url, "benchmarks.api_load_app:queries()", path, args, 1.0, paced=args.paced)
                 for path in QUERIES if args.paced]
        # The rate limiter's own cost: the first query, kept, with no limit counted.
        runs.append(measure(client, url, "benchmarks.api_load_app:queries()", QUERIES[0], args, 1.0,
                            rate_limit="off"))
        if args.paced:
            runs.append(measure(client, url, "benchmarks.api_load_app:constant()", CONSTANT, args, 0,
                                paced=args.paced))
        runs.append(measure(client, url, "benchmarks.api_load_app:constant()", CONSTANT, args, 0))
    report(runs, args)


def from_dynamodb(args: argparse.Namespace) -> list[Run]:
    """The runs with the day in DynamoDB and Redis empty: every answer from the API's DynamoDB fallback."""
    with tempfile.TemporaryDirectory(prefix="api-load-") as state:
        ports = Ports(kinesis=free_port(), kinesis_tls=free_port(), moto=free_port(), redis=free_port(),
                      api=free_port())
        name = "apiload"
        local = LocalStack(state_dir=Path(state), ports=ports, stack_name=name)
        try:
            local.start_infrastructure()
            env = {**local.env, "WIKITIDE_STACK": name, "WIKITIDE_METRICS": "off"}
            os.environ.update(env)
            import boto3

            from kcl_app.bootstrap import build_stores

            resources = stack.deploy_local(boto3.client("cloudformation"), boto3.client("kinesis"), name)
            client = redis.Redis.from_url(env["REDIS_URL"], decode_responses=True)
            client.set(keys.READY, int(time.time()))  # no rebuild while loading: the loader writes both stores
            started = time.monotonic()
            events = generate(events_per_minute=args.events_per_minute)
            stores, _ = build_stores(boto3.client("dynamodb"), client, resources)
            load_into(stores, events)
            client.flushdb()  # empty, as after a restart: the API finds it not ready and reads DynamoDB
            print(f"loaded {len(events):,} events ({len({(e['wiki'], e['title']) for e in events}):,} pages, "
                  f"{len({e['wiki'] for e in events})} wikis) into DynamoDB (moto) in "
                  f"{time.monotonic() - started:.0f} s; Redis emptied")
            calls_url = f"http://127.0.0.1:{ports.moto}{CALLS_PATH}"
            print("answered from Redis only (503 while it is not ready): "
                  + ", ".join(f"{path} {status}" for path, status in statuses(env["REDIS_URL"], REDIS_ONLY)))
            runs = [measure(client, env["REDIS_URL"], "benchmarks.api_load_app:queries()", path, args, cache_seconds,
                            calls_url=calls_url)
                    for cache_seconds in ANSWER_CACHE_SECONDS for path in DYNAMODB_QUERIES]
            runs.append(measure(client, env["REDIS_URL"], "benchmarks.api_load_app:constant()", CONSTANT, args, 0))
        finally:
            local.stop()
    return runs


def statuses(redis_url: str, paths: list[str]) -> list[tuple[str, int]]:
    """One request to each path, in a process serving the API as the runs do: the status codes."""
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url}
    server = subprocess.Popen(  # noqa: S603 - our own gunicorn, arguments built here
        [str(Path(sys.executable).with_name("gunicorn")), "-c", "python:api.serving", "--workers", "1", "--bind",
         f"127.0.0.1:{port}", "--log-level", "warning", "--graceful-timeout", "5",
         "benchmarks.api_load_app:queries()"],
        cwd=ROOT, env=env, start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_answering(base + "/v1/stats?window=1m")
        return [(path, httpx.get(base + path, timeout=60).status_code) for path in paths]
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def moto_requests(calls_url: str | None) -> int:
    if calls_url is None:
        return 0
    answer = httpx.get(calls_url, timeout=120)  # moto answers it after the requests a run left queued
    answer.raise_for_status()
    return sum(answer.json().values())


def measure(client: redis.Redis, redis_url: str, app: str, path: str, args: argparse.Namespace,
            cache_seconds: float, *, rate_limit: str = "1000000/second", calls_url: str | None = None,
            paced: int | None = None) -> Run:
    """One wrk run against `path`: as many requests as the server takes, or, with `paced`, about that many a
    second from the same connections (each pauses between its requests: `benchmarks/wrk_paced.lua`)."""
    port = free_port()
    # Every request comes from 127.0.0.1: a limit no run reaches, still counted in Redis as in production.
    env = {**os.environ, "REDIS_URL": redis_url, "WIKITIDE_ANSWER_CACHE_SECONDS": str(cache_seconds),
           "WIKITIDE_RATE_LIMIT_QUERIES": rate_limit}
    server = subprocess.Popen(  # noqa: S603 - our own gunicorn, arguments built here
        [str(Path(sys.executable).with_name("gunicorn")), "-c", "python:api.serving", "--workers",
         str(args.workers), "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "--graceful-timeout", "5", app],
        cwd=ROOT, env=env, start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_answering(base + path)
        client.config_set("slowlog-log-slower-than", args.slowlog_us)
        client.config_set("slowlog-max-len", 10_000)
        client.slowlog_reset()
        moto_before = moto_requests(calls_url)
        output = subprocess.run(  # noqa: S603
            ["wrk", "-t2", f"-c{args.connections}", f"-d{args.seconds}s", "--latency",
             *(["-s", str(PACED_SCRIPT), base + path, "--", str(pause_ms(args.connections, paced))]
               if paced else [base + path])],
            check=True, capture_output=True, text=True, timeout=args.seconds + 60,
        ).stdout
        moto_made = moto_requests(calls_url) - moto_before
        # The benchmark's own SLOWLOG RESET is logged too (freeing the previous entries takes milliseconds).
        slow = [entry for entry in client.slowlog_get(10_000) if _words(entry)[0].upper() not in OWN_COMMANDS]
        client.config_set("slowlog-log-slower-than", 10_000)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    slowest = max(slow, key=lambda entry: entry["duration"], default=None)
    print(f"  {path} (kept {cache_seconds:g} s): {re.search(r'Requests/sec:.*', output)[0]}", flush=True)  # type: ignore[index]
    requests = int(re.search(r"(\d+) requests in", output)[1])  # type: ignore[index]
    return Run(
        path=(path + (f" [paced {paced}/s]" if paced else "")) if app.endswith("constant()") else
        f"{path} [{'kept 1 s' if cache_seconds else 'not kept'}{', no rate limit' if rate_limit == 'off' else ''}"
        f"{f', paced {paced}/s' if paced else ''}]",
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1]),  # type: ignore[index]
        p50_ms=latency(output, "50%"),
        p99_ms=latency(output, "99%"),
        errors=errors(output),
        slowest_redis_us=None if slowest is None else int(slowest["duration"]),
        slowest_command="" if slowest is None else " ".join(_words(slowest)),
        moto_per_request=moto_made / requests if calls_url is not None and requests else None,
    )


def pause_ms(connections: int, rate: int) -> int:
    """Each connection's pause before a request for `connections` together to offer `rate` requests/s, less a
    millisecond for the answer itself (the achieved rate is printed: it is what counts)."""
    return max(0, round(connections * 1000 / rate) - 1)


def _words(entry: dict) -> list[str]:
    """A slow-log entry's command and first argument."""
    command = entry["command"]
    words = command.split() if isinstance(command, bytes) else str(command).split()
    return [w.decode(errors="replace") if isinstance(w, bytes) else w for w in words[:2]]


def wait_answering(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=5)
        except httpx.HTTPError:
            time.sleep(0.2)
            continue
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}: {response.text[:300]}")
        return
    raise SystemExit(f"{url} did not answer within 60 s")


def latency(output: str, percentile: str) -> float:
    value, unit = re.search(rf"^\s+{re.escape(percentile)}\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def errors(output: str) -> int:
    found = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return (int(found[1]) if found else 0) + (sum(int(n) for n in socket.groups()) if socket else 0)


def report(runs: list[Run], args: argparse.Namespace) -> None:
    # Every unpaced run of the constant endpoint (first and last with Redis; last from DynamoDB).
    constants = [run.requests_per_s for run in runs if run.path == CONSTANT]
    constant = statistics.mean(constants)
    print(f"\n{args.workers} gunicorn workers (gevent, api/serving.py), wrk -t2 -c{args.connections} "
          f"-d{args.seconds}s; answers from {args.store}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'path':75} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'of const':>8} {'errors':>6}  slowest Redis")
    for run in runs:
        slowest = "none" if run.slowest_redis_us is None else f"{run.slowest_redis_us} µs {run.slowest_command}"
        if run.slowest_redis_us is None:
            slowest += f" over {args.slowlog_us} µs"
        moto = "" if run.moto_per_request is None else f"; moto requests per answer {run.moto_per_request:.2f}"
        # A paced run's rate is the one asked for, not a measure of the server: no ratio.
        ratio = f"{'':>8}" if "paced" in run.path else f"{run.requests_per_s / constant:8.2f}"
        print(f"{run.path:75} {run.requests_per_s:8.0f} {run.p50_ms:7.2f} {run.p99_ms:7.2f} "
              f"{ratio} {run.errors:6d}  {slowest}{moto}")
    print(f"'of const': requests/s over the mean of the constant endpoint's {len(constants)} unpaced run(s), "
          f"{constant:,.0f} ({', '.join(f'{value:,.0f}' for value in constants)})")


if __name__ == "__main__":
    main()
