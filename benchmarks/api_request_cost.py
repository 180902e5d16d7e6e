"""What one kept answer costs the API's process, against a minimal Flask app answering a constant, with no server
and no network: the app's own share of `benchmarks/api_load.py`'s ratio, measured without wrk's noise.

`.venv/bin/python benchmarks/api_request_cost.py [--requests 20000] [--rounds 5]` starts a redis-server of its own,
loads a small generated day (`tests/day.py`) through the processor's Redis path, builds four apps in this run and
calls each one's WSGI callable with a prepared `GET` (the same environ a server would pass), round after round:

- `constant`: `benchmarks.api_load_app:constant()`, the baseline;
- `kept`: the API's production read path (`benchmarks.api_load_app:queries()`) answering `/v1/stats?window=1h` from
  its kept answer, with the per-client rate limit counted in that Redis (at a limit no run reaches) as served;
- `kept, Flask-Limiter alone`: the same, with `api.limits.PlannedLimiter` replaced by Flask-Limiter's `Limiter`
  (every request resolved and counted by Flask-Limiter's own path): what the plans save;
- `kept, no rate limit`: the same with the limit `off` (Flask-Limiter still installed, its hooks still run).

It prints each app's median µs per request over the rounds and the constant's share of it (the ratio the API
benchmark compares, before the server's and wrk's shares). Everything started is stopped.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import flask_limiter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks and tests, when run as a script
from benchmarks.api_load import own_redis  # noqa: E402
from tests.day import generate, load  # noqa: E402
from wikitide import keys  # noqa: E402

KEPT = ("/v1/stats", "window=1h")
NO_REFUSAL = "1000000/second"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class FlaskLimiterAlone(flask_limiter.Limiter):
    """Flask-Limiter as it comes, where the API builds a `PlannedLimiter`."""


def environ(path: str, query: str) -> dict[str, Any]:
    return {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000", "HTTP_USER_AGENT": "wrk",
            "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
            "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0)}


def per_request_us(app: WsgiApp, path: str, query: str, requests: int) -> float:
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        statuses.append(status)

    started = time.perf_counter()
    for _ in range(requests):
        b"".join(app(environ(path, query), start_response))
    elapsed = time.perf_counter() - started
    if set(statuses) != {"200 OK"}:
        sys.exit(f"{path}: answers other than 200: {sorted(set(statuses))}")
    return elapsed / requests * 1e6


def build(limit: str, limiter_class: type[flask_limiter.Limiter] | None = None) -> WsgiApp:
    from api import limits
    from benchmarks.api_load_app import queries

    os.environ["WIKITIDE_RATE_LIMIT_QUERIES"] = limit
    planned = limits.PlannedLimiter
    if limiter_class is not None:
        limits.PlannedLimiter = limiter_class  # type: ignore[misc]
    try:
        return queries()  # type: ignore[return-value]
    finally:
        limits.PlannedLimiter = planned  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events-per-minute", type=int, default=5)
    args = parser.parse_args()
    with own_redis("api-request-cost-") as client:
        load(client, generate(events_per_minute=args.events_per_minute))
        client.set(keys.READY, int(time.time()))
        os.environ["REDIS_URL"] = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
        os.environ["WIKITIDE_ANSWER_CACHE_SECONDS"] = "1"
        from benchmarks.api_load_app import constant

        apps: dict[str, tuple[WsgiApp, str, str]] = {
            "constant": (constant(), "/constant", ""),  # type: ignore[dict-item]
            "kept": (build(NO_REFUSAL), *KEPT),
            "kept, Flask-Limiter alone": (build(NO_REFUSAL, FlaskLimiterAlone), *KEPT),
            "kept, no rate limit": (build("off"), *KEPT),
        }
        rounds: dict[str, list[float]] = {name: [] for name in apps}
        for app, path, query in apps.values():
            per_request_us(app, path, query, 2_000)  # warm: the plans, the kept answer, the windows
        for _ in range(args.rounds):
            for name, (app, path, query) in apps.items():
                rounds[name].append(per_request_us(app, path, query, args.requests))
    constant_us = statistics.median(rounds["constant"])
    print(f"{args.requests:,} requests x {args.rounds} rounds per app, load average {os.getloadavg()[0]:.1f}")
    print(f"{'app':<28}{'median µs':>10}{'constant / app':>16}   rounds")
    for name, values in rounds.items():
        median = statistics.median(values)
        print(f"{name:<28}{median:>10.1f}{constant_us / median:>16.2f}   {', '.join(f'{v:.1f}' for v in values)}")


if __name__ == "__main__":
    main()
