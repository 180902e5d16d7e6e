"""Soak: `wikitide local up` at the live rate for a long time. Is the end as good as the beginning?

The same set-up as `benchmarks/latency.py` (whose pieces this imports): the whole local stack as a subprocess on
free ports, its producer reading `--source sse:URL` from a replay server in this process that sends distinct
recorded changes at `--rate` events/s, each stamped with its send time; the API polled for when each event is
first listed. Measured:

- latency per event (first listed in `/v1/edits/recent` - sent) in the first and in the last `--window` minutes
  of the soak (after warm-up), p50 and p99, and their ratio: the goal is a last window no worse than the first;
- every process's resident memory (psutil, the launcher's whole process tree, grouped by what it runs) sampled
  every `--sample` seconds: first and last sample and the growth per hour of a least-squares line through them;
- at the end: sending stops, the API's count must reach every event sent (and not pass it), then Ctrl-C.

The API is polled every `--poll` seconds (0.1: two requests each; at 0.05 the polling alone took about a tenth of
this 2-core machine). A progress line every `--window` minutes gives the figures so far.

Run: .venv/bin/python benchmarks/soak.py --minutes 120 [--rate 30] [--window 10] [--sample 30]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

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

from producer.replay import ReplayServer
from wikitide.localstack.services import free_port


def role(process: psutil.Process) -> str:
    """What a process of the local stack runs, from its command line."""
    try:
        line = " ".join(process.cmdline())
    except psutil.Error:
        return "gone"
    for needle, name in (("kinesis-local", "kinesis-mock"), ("moto_server", "moto"), ("redis-server", "redis"),
                         ("gunicorn", "api"), ("MultiLangDaemon", "kcl daemon (JVM)"),
                         ("wikitide-kcl-processor", "kcl processors"), (" consume ", "kcl worker (python)"),
                         (" produce ", "producer"), ("archive forward", "archive forwarder"),
                         ("local up", "launcher")):
        if needle in line:
            return name
    return line[:40]


def sample_memory(root: int) -> dict[str, int]:
    """Resident bytes per role over the launcher's process tree."""
    total: dict[str, int] = defaultdict(int)
    try:
        tree = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
    except psutil.Error:
        return {}
    for process in tree:
        with contextlib.suppress(psutil.Error):
            total[role(process)] += process.memory_info().rss
    return dict(total)


def growth_per_hour(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, bytes), in bytes per hour."""
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    return 0.0 if var == 0 else 3600 * sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var


def report_progress(elapsed: float, window: float, sent: Sent, observed: Observed,
                    memory: dict[str, list[tuple[float, int]]]) -> None:
    """One line: the latency of the events sent in the last `window` seconds that were listed, and memory now."""
    now = time.monotonic()
    with sent.lock:
        recent = [(k, t) for k, t in zip(sent.keys, sent.times, strict=True) if now - window <= t]
        total = len(sent.keys)
    seen = [observed.first_seen[k] - t for k, t in recent if k in observed.first_seen]
    rss = ", ".join(f"{name} {points[-1][1] / 2**20:.0f}" for name, points in sorted(memory.items()))
    print(f"[{elapsed / 60:5.1f} min] sent {total:,}, counted {current_count(observed):,}; last window: "
          f"{percentiles(seen)}; MiB: {rss}; load {os.getloadavg()[0]:.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=120.0, help="minutes of steady state")
    parser.add_argument("--rate", type=float, default=30.0, help="events per second (the live rate)")
    parser.add_argument("--window", type=float, default=10.0, help="minutes compared at the start and the end")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between memory samples")
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between API polls (two requests each)")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="seconds to wait for the backlog")
    args = parser.parse_args()
    # Ctrl-C (SIGINT) stops the soak and its stack even when it was started in the background (`... &`), where a
    # non-interactive shell starts it with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    sent, observed, stop_polling = Sent(), Observed(), threading.Event()
    memory: dict[str, list[tuple[float, int]]] = defaultdict(list)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    with contextlib.ExitStack() as cleanup:
        workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
        server = cleanup.enter_context(ReplayServer(paced_frames(args.rate, 1.0, sent)))
        cleanup.callback(sent.close)
        api_port = free_port()
        api = f"http://127.0.0.1:{api_port}"
        command = local_up_command(server.url, workdir / "state", api_port=api_port, moto_port=free_port())
        log = (workdir / "launcher.log").open("wb")
        cleanup.callback(log.close)
        launcher = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        left: list[str] = []
        cleanup.callback(lambda: left.extend(stop_launcher(launcher)))
        # The count is read over a day: a soak of more than an hour would drop its first events out of a 1-h window.
        poller = threading.Thread(target=poll, args=(api, args.poll, observed, stop_polling, "24h"), daemon=True)
        poller.start()
        cleanup.callback(poller.join, 10)
        cleanup.callback(stop_polling.set)

        wait_until(lambda: current_count(observed) > 0, 300, "event counted by the API", launcher)
        sent.full_rate.set()
        caught_up = wait_until(lambda: current_count(observed) >= sent.count() - args.rate, 600,
                               "catch-up with the backlog", launcher)
        start, end = caught_up, caught_up + args.minutes * 60
        next_report = start + args.window * 60
        while time.monotonic() < end:
            if launcher.poll() is not None:
                raise RuntimeError(f"the launcher exited ({launcher.returncode}) during the soak")
            now = time.monotonic()
            for name, rss in sample_memory(launcher.pid).items():
                memory[name].append((now - start, rss))
            if now >= next_report:  # figures so far, so an interrupted soak still leaves some
                report_progress(now - start, args.window * 60, sent, observed, memory)
                next_report += args.window * 60
            time.sleep(min(args.sample, max(0.0, end - time.monotonic())))
        total = sent.close()
        drained: float | None = None
        with contextlib.suppress(TimeoutError):  # the figures are printed either way, with the drain's failure
            drained = wait_until(lambda: current_count(observed) >= total, args.drain_timeout,
                                 "count of every event sent", launcher)
        time.sleep(2)  # a double count would show by now
        final = current_count(observed)
        stop_polling.set()
        poller.join(10)
        left.extend(stop_launcher(launcher))

    with sent.lock:
        times, keys = list(sent.times), list(sent.keys)
    window = args.window * 60

    def latencies(low: float, high: float) -> list[float]:
        return [observed.first_seen[keys[i]] - t for i, t in enumerate(times)
                if low <= t < high and keys[i] in observed.first_seen]

    first, last = latencies(start, start + window), latencies(end - window, end)
    print(f"soak: {args.minutes:g} minutes at {args.rate:g} events/s after warm-up; {total:,} events sent")
    print(f"latency per event, first {args.window:g} minutes: {percentiles(first)}")
    print(f"latency per event, last {args.window:g} minutes:  {percentiles(last)}")
    if first and last:
        print(f"last/first: p50 {statistics.median(last) / statistics.median(first):.2f}, "
              f"p99 {sorted(last)[int(0.99 * len(last))] / sorted(first)[int(0.99 * len(first))]:.2f}")
    print("resident memory per process (first sample -> last, growth per hour of a fitted line):")
    for name, points in sorted(memory.items()):
        print(f"  {name:20s} {points[0][1] / 2**20:8.1f} MiB -> {points[-1][1] / 2**20:8.1f} MiB, "
              f"{growth_per_hour(points) / 2**20:+.1f} MiB/h over {len(points)} samples")
    verdict = "every event counted once" if final == total else "MISMATCH"
    took = f"NOT within {args.drain_timeout:.0f} s" if drained is None else f"{drained - end:.1f} s"
    print(f"{verdict}: {final:,} counted of {total:,} sent, drained {took} after the last")
    print(f"processes left after SIGINT: {left or 'none'}; load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
