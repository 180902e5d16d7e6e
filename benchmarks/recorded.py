"""Recorded recentchange events for the processor benchmarks, re-keyed so that every copy is a distinct change.

The recording is read from `../shared/data/` beside the checkout (as `tests/conftest.py` does); nothing is
copied into the repository.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from kcl_app.handler import StreamRecord

RECENTCHANGE = Path(__file__).resolve().parents[2] / "shared" / "data" / "recentchange"
RECORDING = RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson"
SHARD = "shardId-000000000000"
FIRST_SEQUENCE = 49_600_000_000_000_000_000  # the size of a real Kinesis sequence number


def recorded_events() -> list[dict[str, Any]]:
    lines = RECORDING.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def parse_rate(lines: int = 20_000, repeats: int = 15) -> float:
    """Median records/s of `json.loads` over `lines` lines of the recording, in this process: the machine-speed
    figure the issues compare machines by (the slower kind ~72k, the faster 182-206k)."""
    recorded = [line for line in RECORDING.read_text(encoding="utf-8").splitlines() if line.strip()]
    sample = (recorded * (lines // len(recorded) + 1))[:lines]
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for line in sample:
            json.loads(line)
        rates.append(len(sample) / (time.perf_counter() - started))
    return statistics.median(rates)


def rekeyed(event: dict[str, Any], n: int, *, dt: str | None = None) -> dict[str, Any]:
    """A copy of `event` that is the n-th distinct change: new meta.id, recent-change id and revision id."""
    copy = dict(event)
    copy["meta"] = {**event["meta"], "id": str(uuid.UUID(int=n + 1))}
    if dt is not None:
        copy["meta"]["dt"] = dt
    if "id" in event:
        copy["id"] = 2_000_000_000 + n
    if isinstance(event.get("revision"), dict):
        copy["revision"] = {**event["revision"], "new": 100_000_000 + n}
    return copy


def distinct_events(count: int) -> list[dict[str, Any]]:
    """`count` distinct changes, cycling through the recording."""
    base = recorded_events()
    return [rekeyed(base[n % len(base)], n) for n in range(count)]


def stream_records(count: int, *, duplicate_every: int = 10, shard: str = SHARD) -> list[StreamRecord]:
    """`count` distinct changes as one shard's Kinesis records, each `duplicate_every`-th one sent again five
    records later (as a source or producer retry would), with consecutive sequence numbers."""
    payloads: list[bytes] = []
    events = [json.dumps(e, ensure_ascii=False).encode("utf-8") for e in distinct_events(count)]
    for index, payload in enumerate(events):
        payloads.append(payload)
        if duplicate_every and index >= 5 and (index - 5) % duplicate_every == 0:
            payloads.append(events[index - 5])
    return [
        StreamRecord(payload, shard, FIRST_SEQUENCE + i, 1_630_070_400_000 + i) for i, payload in enumerate(payloads)
    ]
