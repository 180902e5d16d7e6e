"""A generated day of the live stream, and its loading through the processor's Redis path: shared by
`tests/integration/test_day_queries.py` and `benchmarks/api_load.py`.

What `generate` makes (a day at the live stream's cardinality of wikis, its volume scaled by `events_per_minute`):
about that many events a minute over 1,440 minutes of event time, 900 wikis (Zipf-like, a tenth of the events on
the first), pages drawn from a skewed pool of 30,000 titles per wiki, edits, page creations, log entries and
categorisations, bots, temporary accounts and IPs; 5% of the events arrive late by up to 90 minutes. One page is
edited steadily all day (`STEADY`, every third minute), one jumps from nothing to 12 edits in the last 5 minutes
(`BURST`). `load` sends them through `process_batch` (parse, enrich, the ledger's cells: the in-memory fakes of the
DynamoDB stores) into the real `RedisMirror`, in batches of `BATCH` split by shard, every seventh delivered twice.
"""

from __future__ import annotations

import itertools
import json
import random
import zlib
from datetime import UTC, datetime
from typing import Any

import redis

from kcl_app.handler import Stores, StreamRecord, process_batch
from kcl_app.redis_mirror import RedisMirror
from tests.unit.fakes import FakeDeadLetters, FakeEventStore, FakeLedger

FIRST_MINUTE = int(datetime(2026, 11, 30, tzinfo=UTC).timestamp()) // 60
MINUTES = 1440
EVENTS_PER_MINUTE = 35
WIKIS = [f"w{i:03d}wiki" for i in range(900)]
SHARDS = [f"shardId-00000000000{i}" for i in range(4)]
BATCH = 500
STEADY = ("w000wiki", "Steady page")
BURST = ("w001wiki", "Burst page")


def generate(seed: int = 12, events_per_minute: int = EVENTS_PER_MINUTE) -> list[dict[str, Any]]:
    """Raw recentchange events in arrival order."""
    rng = random.Random(seed)
    wiki_weights = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(WIKIS))))
    title_weights = list(itertools.accumulate(1 / (rank + 1) ** 0.8 for rank in range(30_000)))
    events: list[dict[str, Any]] = []
    rc_id = itertools.count(1)
    revision = itertools.count(1000)

    def event(minute: int, wiki: str, title: str, kind: str) -> dict[str, Any]:
        ms = minute * 60_000 + rng.randrange(60_000)
        dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
        user = rng.choice(["Alice", "Bob", "~2026-12345-6", "192.0.2.7", "2001:db8::1", "HelperBot"])
        raw: dict[str, Any] = {
            "meta": {"dt": dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z", "id": f"m{len(events)}",
                     "domain": f"{wiki}.example.org", "stream": "mediawiki.recentchange"},
            "id": next(rc_id), "type": kind, "namespace": rng.choice([0, 0, 0, 1, 2, 4, 14]), "title": title,
            "user": user, "bot": user.endswith("Bot"), "wiki": wiki, "server_name": f"{wiki}.example.org",
            "comment": "c", "timestamp": ms // 1000,
        }
        if kind in ("edit", "new"):
            new = rng.randint(0, 5000)
            raw["revision"] = {"new": next(revision)} if kind == "new" else {"old": 1, "new": next(revision)}
            raw["length"] = {"new": new} if kind == "new" else {"old": max(0, new + rng.randint(-900, 900)),
                                                                 "new": new}
        return raw

    for offset in range(MINUTES):
        minute = FIRST_MINUTE + offset
        for _ in range(rng.randint(events_per_minute // 2, events_per_minute * 3 // 2)):
            at = max(FIRST_MINUTE, minute - rng.randint(1, 90)) if rng.random() < 0.05 else minute
            wiki = WIKIS[0] if rng.random() < 0.1 else rng.choices(WIKIS, cum_weights=wiki_weights)[0]
            title = f"Page {rng.choices(range(30_000), cum_weights=title_weights)[0]}"
            kind = rng.choices(["edit", "new", "log", "categorize"], weights=[70, 8, 12, 10])[0]
            events.append(event(at, wiki, title, kind))
        if offset % 3 == 0:
            events.append(event(minute, *STEADY, "edit"))
        if offset >= MINUTES - 5:
            events += [event(minute, *BURST, "edit") for _ in range(12 // 5 + (offset == MINUTES - 1) * 2)]
    return events


def load(client: redis.Redis, events: list[dict[str, Any]]) -> tuple[FakeLedger, FakeEventStore]:
    """Process `events` (in that order) into Redis; returns the ledger holding every counter cell and the event
    store holding every claim."""
    ledger, claims = FakeLedger(), FakeEventStore()
    load_into(Stores(claims, FakeDeadLetters(), ledger, RedisMirror(client)), events)
    return ledger, claims


def load_into(stores: Stores, events: list[dict[str, Any]]) -> None:
    """Process `events` (in that order) through `stores` (fakes, or the real DynamoDB and Redis stores)."""
    sequences = dict.fromkeys(SHARDS, 1)
    per_minute = max(1, len(events) // MINUTES)
    for number, start in enumerate(range(0, len(events), BATCH)):
        by_shard: dict[str, list[StreamRecord]] = {}
        for raw in events[start : start + BATCH]:
            shard = SHARDS[zlib.crc32(f"{raw['wiki']}\t{raw['title']}".encode()) % len(SHARDS)]
            arrival = (FIRST_MINUTE + min(MINUTES - 1, start // per_minute)) * 60_000 + 120_000
            arrival = max(arrival, raw["timestamp"] * 1000 + 1000)
            by_shard.setdefault(shard, []).append(
                StreamRecord(json.dumps(raw).encode(), shard, sequences[shard], arrival))
            sequences[shard] += 1
        for records in by_shard.values():
            outcome = process_batch(records, stores)
            if outcome.rejected:
                raise AssertionError(f"generated records rejected: {outcome.rejected}")
            if number % 7 == 0:
                process_batch(records, stores)  # a redelivered batch changes nothing
