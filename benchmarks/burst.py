"""Burst: the local stack at a sustained 10x the live rate, then a burst of 50x, against the emulators' ceilings
measured in the same run (this machine is shared and machines of its kind differ about 2x in speed).

1. Ceilings (`benchmarks/ceilings.py`): plain loops of the pipeline's calls against a fresh kinesis-mock and moto.
2. The pipeline: `wikitide local up` (as `benchmarks/latency.py` starts it, whose pieces this imports), its
   producer reading a paced SSE source in this process. A trickle until the first event is counted, then the
   phases: `--rate` events/s for `--seconds`, then `--burst-factor` x the live rate (30/s) for `--burst-seconds`;
   then sending stops. The source is paced, not forced: when the producer cannot take more, its socket pushes
   back and the achieved rate is what is reported.

Measured: per phase, events sent (the achieved rate), latency per event (first listed by `/v1/edits/recent` -
sent) and events counted meanwhile; the backlog (sent - counted by `/v1/stats`) sampled every second, its peak
and the drain time after the last event sent (the headroom goal: within 90 s); every event counted exactly once;
moto's calls per event by action (from the local moto server's `/_wikitide/calls`) and the ceiling they imply
from step 1 (1 / the sum over actions of calls per event / calls per second; actions without a plain loop are
priced at the conditional `UpdateItem`'s); each process's CPU per event (psutil, by role), and what it implies
(one emulator is one busy core at most: moto and kinesis-mock each serve from one thread or event loop).

Run: .venv/bin/python benchmarks/burst.py [--rate 300] [--seconds 300] [--burst-factor 50] [--burst-seconds 30]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import ceilings
import httpx
import psutil
from latency import (
    REPO,
    Observed,
    Sent,
    current_count,
    local_up_command,
    paced_frames,
    percentiles,
    poll,
    stop_launcher,
    wait_until,
)
from soak import role

from producer.replay import ReplayServer
from wikitide.localstack.moto_server import CALLS_PATH
from wikitide.localstack.services import free_port

LIVE_RATE = 30.0
HEADROOM_DRAIN_SECONDS = 90.0
# A phase "kept" its rate when the source sent at least this share of it (the paced source falls behind only when
# the producer's writes push back).
KEPT_SHARE = 0.98


@dataclass(frozen=True)
class Phase:
    name: str
    rate: float
    seconds: float


class Schedule:
    """The source's rate by phase, from the moment `start` is called (the last phase's rate after the end)."""

    def __init__(self, phases: Sequence[Phase]) -> None:
        self.phases = list(phases)
        self.started: float | None = None

    def start(self) -> float:
        self.started = time.monotonic()
        return self.started

    def rate(self) -> float:
        elapsed = time.monotonic() - (self.started or time.monotonic())
        for phase in self.phases:
            if elapsed < phase.seconds:
                return phase.rate
            elapsed -= phase.seconds
        return self.phases[-1].rate

    def spans(self) -> list[tuple[Phase, float, float]]:
        assert self.started is not None
        spans, at = [], self.started
        for phase in self.phases:
            spans.append((phase, at, at + phase.seconds))
            at += phase.seconds
        return spans


def cpu_by_role(root: int) -> dict[str, float]:
    """CPU seconds (user + system) of the launcher's process tree, by what each process runs."""
    total: dict[str, float] = defaultdict(float)
    with contextlib.suppress(psutil.Error):
        for process in [psutil.Process(root), *psutil.Process(root).children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total[role(process)] += times.user + times.system
    return dict(total)


def moto_calls(moto_port: int) -> Counter[str]:
    answer = httpx.get(f"http://127.0.0.1:{moto_port}{CALLS_PATH}", timeout=10)
    answer.raise_for_status()
    return Counter({target.rpartition(".")[2]: n for target, n in answer.json().items()})


def count_at(observed: Observed, moment: float) -> int:
    """The API's count as last polled at or before `moment`."""
    return max((count for at, count in observed.counts if at <= moment), default=0)


def producer_calls(logs: Path) -> str:
    """The producer's own tally (records written and calls made), from its log's last words."""
    for path in sorted(logs.glob("producer*.log")):
        found = re.findall(r"stopped: (read .*)", path.read_text(encoding="utf-8", errors="replace"))
        if found:
            return found[-1]
    return "(no producer tally found)"


def run_pipeline(phases: Sequence[Phase], limits: dict[str, float], *, drain_timeout: float,
                 poll_every: float = 0.05, require_rate: bool = False) -> bool:
    """Runs the phases on a fresh `wikitide local up`, prints the figures; True when every event was counted
    exactly once and the backlog drained within `HEADROOM_DRAIN_SECONDS` of the last event sent, and (with
    `require_rate`) every phase sent at least `KEPT_SHARE` of the rate it asked for: a pipeline that pushes back
    on its source has not sustained the rate, however fast it drains what it took."""
    schedule = Schedule(phases)
    sent, observed, stop_polling = Sent(), Observed(), threading.Event()
    backlog: list[tuple[float, int]] = []
    with contextlib.ExitStack() as cleanup:
        workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
        server = cleanup.enter_context(ReplayServer(paced_frames(schedule.rate, 1.0, sent)))
        cleanup.callback(sent.close)
        api_port, moto_port = free_port(), free_port()
        api = f"http://127.0.0.1:{api_port}"
        command = local_up_command(server.url, workdir / "state", api_port=api_port, moto_port=moto_port)
        log = (workdir / "launcher.log").open("wb")
        cleanup.callback(log.close)
        launched = time.monotonic()
        launcher = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        left: list[str] = []
        cleanup.callback(lambda: left.extend(stop_launcher(launcher)))
        poller = threading.Thread(target=poll, args=(api, poll_every, observed, stop_polling), daemon=True)
        poller.start()
        cleanup.callback(poller.join, 10)
        cleanup.callback(stop_polling.set)

        first = wait_until(lambda: current_count(observed) > 0, 300, "event counted by the API", launcher)
        wait_until(lambda: current_count(observed) >= sent.count(), 300, "the warm-up trickle counted", launcher)
        cpu_before, calls_before, counted_before = cpu_by_role(launcher.pid), moto_calls(moto_port), \
            current_count(observed)
        sent_before = sent.count()
        start = schedule.start()
        sent.full_rate.set()
        end = start + sum(p.seconds for p in phases)
        while time.monotonic() < end:
            if launcher.poll() is not None:
                raise RuntimeError(f"the launcher exited ({launcher.returncode}) during the run")
            backlog.append((time.monotonic(), sent.count() - current_count(observed)))
            time.sleep(1)
        total = sent.close()
        last_sent = time.monotonic()
        drained: float | None = None
        while time.monotonic() < last_sent + drain_timeout and launcher.poll() is None:
            counted = current_count(observed)
            backlog.append((time.monotonic(), total - counted))
            if counted >= total:
                drained = time.monotonic()
                break
            time.sleep(1)
        time.sleep(2)  # a count beyond what was sent (a double count) would show by now
        final = current_count(observed)
        cpu_after, calls_after = cpu_by_role(launcher.pid), moto_calls(moto_port)
        stop_polling.set()
        poller.join(10)
        left.extend(stop_launcher(launcher))
        tally = producer_calls(workdir / "state" / "logs")

    with sent.lock:
        times, keys = list(sent.times), list(sent.keys)
    processed = final - counted_before
    print(f"\nthe pipeline: `wikitide local up`, 1 KCL worker, 2 shards; first event counted "
          f"{first - launched:.0f} s after start; {sent_before} warm-up events before the phases")
    kept: dict[str, bool] = {}
    for phase, low, high in schedule.spans():
        indices = [i for i, t in enumerate(times) if low <= t < high]
        kept[phase.name] = len(indices) >= KEPT_SHARE * phase.rate * phase.seconds
        seen = [observed.first_seen[keys[i]] - times[i] for i in indices if keys[i] in observed.first_seen]
        counted = count_at(observed, high) - count_at(observed, low)
        print(f"  {phase.name}: {phase.rate:g}/s asked for {phase.seconds:g} s; sent {len(indices):,} "
              f"({len(indices) / phase.seconds:,.0f}/s achieved), counted meanwhile {counted:,} "
              f"({counted / phase.seconds:,.0f}/s); latency per event: {percentiles(seen)}; "
              f"{len(indices) - len(seen)} never seen in the recent list")
    peak_at, peak = max(backlog, key=lambda point: point[1], default=(start, 0))
    print(f"  backlog (sent - counted): peak {peak:,} events at {peak_at - start:.0f} s after the phases began")
    drain = None if drained is None else drained - last_sent
    took = f"NOT within {drain_timeout:.0f} s" if drain is None else f"{drain:.1f} s"
    print(f"  drained: {took} after the last event sent (headroom goal: within {HEADROOM_DRAIN_SECONDS:.0f} s)")
    once = final == total
    print(f"  {'every event counted once' if once else 'MISMATCH'}: {final:,} counted of {total:,} sent; "
          f"processes left after SIGINT: {left or 'none'}")
    print(f"  the producer: {tally}")

    if processed > 0:
        calls = calls_after - calls_before
        print(f"\nmoto's calls per event counted ({processed:,} events, warm-up excluded):")
        seconds_per_event = 0.0
        for action, n in calls.most_common():
            limit = limits.get(action, limits["UpdateItem"])
            seconds_per_event += n / processed / limit
            print(f"  {action:22} {n / processed:6.3f}   ceiling {limit:7,.0f} calls/s"
                  f"{'' if action in limits else ' (priced as UpdateItem)'}")
        implied = 1 / seconds_per_event if seconds_per_event else float("inf")
        busiest = max((p for p in phases), key=lambda p: p.rate)
        sustained = phases[0]
        span = schedule.spans()[0]
        rate = (count_at(observed, span[2]) - count_at(observed, span[1])) / sustained.seconds
        wall = ("the asked rate was kept: moto is not the wall" if kept[sustained.name]
                else "goal >= 80 % where moto is the wall")
        print(f"  implied moto ceiling: {implied:,.0f} events/s; counted during '{sustained.name}': {rate:,.0f}/s = "
              f"{rate / implied:.0%} of it ({wall}); the busiest phase asked {busiest.rate:g}/s")
        print("CPU per event counted, by process (and events/s if it had one whole core):")
        cpu = {name: cpu_after.get(name, 0.0) - cpu_before.get(name, 0.0) for name in cpu_after}
        for name, used in sorted(cpu.items(), key=lambda item: -item[1]):
            if used > 0:
                print(f"  {name:20} {used / processed * 1000:7.2f} ms  ({processed / used:8,.0f} events/s)")
        whole = sum(cpu.values())
        print(f"  {'all':20} {whole / processed * 1000:7.2f} ms  ({processed / whole * (os.cpu_count() or 1):8,.0f} "
              f"events/s on {os.cpu_count()} CPUs, nothing else running)")
    return (once and drain is not None and drain <= HEADROOM_DRAIN_SECONDS
            and (not require_rate or all(kept.values())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10 * LIVE_RATE, help="sustained events/s")
    parser.add_argument("--seconds", type=float, default=300.0, help="seconds at the sustained rate")
    parser.add_argument("--burst-factor", type=float, default=50.0, help="the burst, times the live rate")
    parser.add_argument("--burst-seconds", type=float, default=30.0)
    parser.add_argument("--probe", type=float, default=10.0, help="seconds per ceiling probe")
    parser.add_argument("--drain-timeout", type=float, default=1200.0, help="seconds to wait for the backlog")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    limits = ceilings.measure(args.probe)
    phases = [Phase("sustained", args.rate, args.seconds)]
    if args.burst_seconds > 0:
        phases.append(Phase("burst", args.burst_factor * LIVE_RATE, args.burst_seconds))
    run_pipeline(phases, limits, drain_timeout=args.drain_timeout)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
