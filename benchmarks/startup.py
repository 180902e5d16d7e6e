"""Start-up: how long after `wikitide local up` starts the first event is counted (what a user sees as numbers on
the dashboard), and where the time goes.

Each run starts `wikitide local up --source synthetic` (as `make up ARGS="--source synthetic"`, on free ports and
a fresh state directory, installed) and polls the API every 0.1 s until `/v1/stats?window=1h` counts an event;
`/health` says `starting` until then. Then it stops the launcher with SIGINT (Ctrl-C) and checks that none of its
processes is left. From the logs of the run, the moments each step ended, in seconds from the start:

- provisioned: the emulators up and the stack deployed in them (the launcher's log line of the stream created);
- leases taken: the KCL worker made its first shard consumer (its log's first `Created new shardConsumer`);
- first batch: a processor logged its first batch;
- first count: the API counted it.

The machine's speed is printed beside the figures (`json.loads` of a recorded event stream, one thread, median of
15): machines of this kind differ about 2x, and that is the figure the issues compare them by.

Run: .venv/bin/python benchmarks/startup.py [--runs 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from latency import REPO, stop_launcher
from recorded import parse_rate

from wikitide.localstack.services import free_port

POLL_SECONDS = 0.1
# Past this the run is reported as failed (a cold start on the slower kind took 90 s before the first leases
# were written by the launcher).
GIVE_UP_SECONDS = 180.0


def first_line_time(path: Path, needle: str, day: dt.date) -> dt.datetime | None:
    """The time stamp of the first line of `path` holding `needle`: Python's logs start with `YYYY-MM-DD
    HH:MM:SS,mmm`, the daemon's with `HH:MM:SS.mmm` (local time, on `day`)."""
    if not path.exists():
        return None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if needle not in line:
            continue
        if line[:4].isdigit() and line[4:5] == "-":
            return dt.datetime.fromisoformat(line[:23].replace(",", "."))
        return dt.datetime.combine(day, dt.time.fromisoformat(line[:12]))
    return None


def one_run(workdir: Path) -> tuple[dict[str, float | None], bool]:
    """Each step's end in seconds from the start (None: not reached), and whether `/health` said `starting`."""
    state = workdir / "state"
    api_port = free_port()
    command = [
        sys.executable, "-m", "wikitide", "local", "up", "--source", "synthetic", "--state-dir", str(state),
        "--kinesis-port", str(free_port()), "--kinesis-tls-port", str(free_port()), "--moto-port", str(free_port()),
        "--redis-port", str(free_port()), "--api-port", str(api_port),
    ]
    output = workdir / "launcher.log"
    started_at = dt.datetime.now()
    started = time.monotonic()
    with output.open("wb") as log:
        launcher = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    counted: float | None = None
    said_starting = False
    try:
        with httpx.Client(timeout=1.0) as http:
            while time.monotonic() - started < GIVE_UP_SECONDS and launcher.poll() is None:
                try:
                    health = http.get(f"http://127.0.0.1:{api_port}/health").json()
                    said_starting = said_starting or health.get("pipeline", {}).get("state") == "starting"
                    events = http.get(f"http://127.0.0.1:{api_port}/v1/stats?window=1h").json().get("events")
                except (httpx.HTTPError, ValueError):
                    events = None
                if events:
                    counted = time.monotonic() - started
                    break
                time.sleep(POLL_SECONDS)
    finally:
        left = stop_launcher(launcher)
    if left:
        raise SystemExit(f"processes left after SIGINT: {left}")
    logs = state / "logs"

    def since(moment: dt.datetime | None) -> float | None:
        return None if moment is None else (moment - started_at).total_seconds()

    day = started_at.date()
    steps = {
        "provisioned": since(first_line_time(output, "wikitide.stack:", day)),
        "leases taken": since(first_line_time(logs / "kcl-worker-1.log", "Created new shardConsumer", day)),
        "first batch": since(first_line_time(logs / "processor-worker-1.log", " records, ", day)),
        "first count": counted,
    }
    return steps, said_starting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: one thread parses {parse_rate():,.0f} recorded events/s (json.loads; the slower kind ~72k, "
          f"the faster 182-206k)", flush=True)
    results = []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="wikitide-startup-") as workdir:
            steps, said_starting = one_run(Path(workdir))
        results.append(steps)
        reached = ", ".join(f"{name} {value:.1f} s" for name, value in steps.items() if value is not None)
        print(f"run {run}: {reached}; /health said starting before: {'yes' if said_starting else 'no'}", flush=True)
    firsts = [r["first count"] for r in results if r["first count"] is not None]
    if len(firsts) < len(results):
        print(f"{len(results) - len(firsts)} run(s) counted nothing within {GIVE_UP_SECONDS:.0f} s")
    if firsts:
        print(f"first count after start: median {statistics.median(firsts):.1f} s, min {min(firsts):.1f} s, "
              f"max {max(firsts):.1f} s (goal: within 30 s)")


if __name__ == "__main__":
    main()
