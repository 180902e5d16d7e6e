"""Record-processor throughput with the in-memory fakes, against a baseline measured in the same run.

What runs: `kcl_app.handler.process_batch` (parse, drop canaries, de-duplicate, enrich, counter-cell
arithmetic) over one shard's records, in KCL-sized batches, with the hand-written fakes of
`tests/unit/fakes.py` as stores (fresh ones each round), so no service and no network is involved.
The records are the recorded events re-keyed into distinct changes, with every tenth one sent twice.

Baseline: `json.loads` of the same records in the same batches, which any processor must pay; the machine is
shared and noisy, so the two are alternated, medians are reported, and the ratio is the stable figure.
Rates are given per second of wall-clock time and per second of this process's CPU time: when other work
keeps both cores busy, a process gets a fraction of one and only the CPU-time rate says what it does per core.

Run: .venv/bin/python benchmarks/processor_throughput.py [--records N] [--batch B] [--rounds R] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from recorded import stream_records

from kcl_app.handler import StreamRecord, process_batch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.unit.fakes, when run as a script
from tests.unit.fakes import fake_stores  # noqa: E402

GOAL = 30_000  # records/s per process (issue 8), on a quiet machine: compare the ratio when it is not


def batches(records: Sequence[StreamRecord], size: int) -> list[Sequence[StreamRecord]]:
    return [records[start : start + size] for start in range(0, len(records), size)]


class Rate:
    """Records per second of wall-clock time and of this process's CPU time (less disturbed by other load)."""

    def __init__(self, records: int, wall: float, cpu: float) -> None:
        self.wall = records / wall
        self.cpu = records / cpu


def timed(records: int, run: Callable[[], None]) -> Rate:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return Rate(records, time.perf_counter() - wall, time.process_time() - cpu)


def json_loads_only(chunks: list[Sequence[StreamRecord]]) -> Rate:
    def run() -> None:
        for chunk in chunks:
            for record in chunk:
                json.loads(record.data)

    return timed(sum(len(c) for c in chunks), run)


def processor(chunks: list[Sequence[StreamRecord]]) -> tuple[Rate, int]:
    """The rate, and the events the fake ledger counted (a check that the work was really done)."""
    stores, _, counters, _, _ = fake_stores()

    def run() -> None:
        for chunk in chunks:
            process_batch(chunk, stores)

    rate = timed(sum(len(c) for c in chunks), run)
    return rate, counters.totals()["events"]


def profile(chunks: list[Sequence[StreamRecord]]) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    processor(chunks)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000, help="distinct changes (plus 10%% duplicates)")
    parser.add_argument("--batch", type=int, default=500, help="records per process_batch call (KCL maxRecords)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one processor round")
    args = parser.parse_args()

    records = stream_records(args.records)
    chunks = batches(records, args.batch)
    if args.profile:
        profile(chunks)
        return
    processor(chunks)  # warm-up: imports, regex compilation, allocator
    baseline: list[Rate] = []
    ours: list[Rate] = []
    counted = 0
    for round_ in range(args.rounds):
        # Alternate which goes first, so a burst of load from elsewhere does not always hit the same one.
        if round_ % 2:
            rate, counted = processor(chunks)
            base = json_loads_only(chunks)
        else:
            base = json_loads_only(chunks)
            rate, counted = processor(chunks)
        baseline.append(base)
        ours.append(rate)

    def line(rates: list[Rate], clock: str) -> str:
        values = [getattr(r, clock) for r in rates]
        return f"median {statistics.median(values):,.0f} records/s (runs: {', '.join(f'{v:,.0f}' for v in values)})"

    def ratio(clock: str) -> float:
        return statistics.median(getattr(r, clock) / getattr(b, clock) for r, b in zip(ours, baseline, strict=True))

    print(f"{len(records):,} records ({args.records:,} distinct changes + duplicates), batches of {args.batch}, "
          f"{args.rounds} rounds alternated, one process")
    for clock, label in (("wall", "wall-clock"), ("cpu", "CPU time of this process")):
        median = statistics.median(getattr(r, clock) for r in ours)
        print(f"{label}:")
        print(f"  baseline, json.loads only:          {line(baseline, clock)}")
        print(f"  process_batch with in-memory fakes: {line(ours, clock)}; "
              f"goal >= {GOAL:,}: {'met' if median >= GOAL else 'NOT met'}")
        print(f"  ratio processor / json.loads: median {ratio(clock):.3f} "
              f"(the processor costs {1 / ratio(clock):.1f}x a bare json.loads)")
    print(f"events counted by the fake ledger per round: {counted:,} (the distinct changes minus canaries)")

if __name__ == "__main__":
    main()
