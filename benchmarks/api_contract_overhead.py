"""What the API's contract layer (`api.schemas` through APIFlask: parameters parsed by schema, answers through
their response schema) costs a request, in process.

`.venv/bin/python benchmarks/api_contract_overhead.py [--requests 300] [--rounds 2]` serves the same reads, over the
same in-memory feed of changes, from two apps built in this run: the API (`api.create_app`) and a plain Flask app
whose views call the same parsers and `api.queries` and answer with `jsonify` (the API's routes before the
contract layer). Requests go through Flask's test client, alternating the apps round by round; it prints each
URL's median per app and the difference. No server, no network, no Redis: only the layer's own cost.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request
from flask.testing import FlaskClient

from api import create_app, queries
from api.filters import ChangeFilter, parse_change_filter
from api.limits import RateLimits
from api.params import parse_limit, parse_wiki_filter
from api.recent import Collector, Position, RecentPage, parse_cursor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.unit.api_fakes, when run as a script
from tests.unit.api_fakes import EmptyStats, NoEdits  # noqa: E402

URLS = ("/v1/edits/recent?limit=500", "/v1/edits/recent?limit=20&editor=human", "/v1/stats?window=1h")
LATEST = 29_412_000  # an epoch minute (2025-12-02)
CHANGE = {"wiki": "enwiki", "type": "edit", "title": "Main Page", "namespace": 0, "dt": "2025-12-02T12:00:00Z",
          "user": "Example", "editor": "user", "bot": False, "minor": False, "patrolled": None, "byte_delta": 12,
          "rev_old": 1, "rev_new": 2, "rc_id": 3, "project": "wikipedia", "language": "en", "is_revert": False,
          "page_url": "https://en.wikipedia.org/wiki/Main_Page", "comment": "an edit", "synthetic": False}


class MemoryStats(EmptyStats):
    """A `StatsStore` holding `changes` changes in its feed and nothing counted."""

    def __init__(self, changes: int) -> None:
        self.feed = [{**CHANGE, "key": f"enwiki:{n}", "ms": LATEST * 60_000 - n} for n in range(changes)]

    def latest_minute(self) -> int | None:
        return LATEST

    def recent(self, matches: ChangeFilter, after: Position | None, limit: int) -> RecentPage:
        collector = Collector(matches, after, limit)
        for doc in self.feed:
            position = Position(doc["ms"], doc["key"])
            if collector.wants(position) and not collector.offer(position, doc):
                break
        return collector.page(None)


def plain_app(stats: MemoryStats) -> Flask:
    app = Flask(__name__)

    @app.get("/v1/stats")
    def _stats() -> Any:
        wiki = parse_wiki_filter(request.args.get("wiki"))
        return jsonify(queries.window_stats(stats, request.args.get("window", ""), wiki))

    @app.get("/v1/edits/recent")
    def _recent() -> Any:
        matches = parse_change_filter(request.args)
        limit = parse_limit(request.args.get("limit"), default=20, maximum=500)
        return jsonify(queries.recent_edits(stats, matches, parse_cursor(request.args.get("cursor")), limit))

    return app


def median_ms(client: FlaskClient, url: str, requests: int) -> float:
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.get_data()[:200]
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per URL, app and round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # apispec's notice about a schema met twice (see api.openapi)
    stats = MemoryStats(500)
    apps = {"plain": plain_app(stats).test_client(),
            "api": create_app(stats=stats, edits=NoEdits(), health_checks={},  # type: ignore[arg-type]
                              rate_limits=RateLimits(queries="off")).test_client()}
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for name, client in apps.items():
            for url in URLS:
                results.setdefault((name, url), []).append(median_ms(client, url, args.requests))
    print(f"{'url':44} {'plain ms':>9} {'api ms':>9} {'layer ms':>9}")
    for url in URLS:
        plain, api = (statistics.median(results[(name, url)]) for name in ("plain", "api"))
        print(f"{url:44} {plain:9.2f} {api:9.2f} {api - plain:9.2f}")


if __name__ == "__main__":
    main()
