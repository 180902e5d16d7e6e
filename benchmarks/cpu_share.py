"""Run a command as if on a machine whose CPU is about a third as fast per thread: the slower machine kind the
issues measure on (`json.loads` of a recording: 72k records/s there; 182-206k on the faster kind).

No clock can be slowed inside a container, so this takes CPU away instead: two busy loops, one pinned to each
core, in a cpu cgroup weighted `--hog-weight` times the default (cgroup v1 `cpu.shares`, v2 `cpu.weight`).
Whatever then runs gets its share of each core from the kernel's fair scheduler, in one of two modes:

- `--mode thread` (the default): COMMAND stays where it is, so each of its runnable threads weighs as much as one
  default task against the loops' group. One thread alone on a core gets 1 / (1 + weight / 2) of it (a third at
  the default 4), and a command busy on both cores two thirds of a core in all: per thread and in all, about what
  the slower kind has. More runnable threads than cores get more than that: this mode is the generous bound.
- `--mode group`: COMMAND and everything it starts share one cgroup of default weight, so all of it together gets
  what one thread gets in the other mode: the same third of a core for one thread, but work on both cores at once
  is slowed another 2.5 times. The harsh bound.

Before the command runs, the speed of one thread under the loops is measured and printed (`json.loads` of the
recorded events, the figure the issues compare machines by), beside the same without the loops. Then COMMAND
runs; when it ends (or this gets SIGINT/SIGTERM) the loops are stopped and the cgroups removed.

Needs root and a cpu cgroup controller (v1 at /sys/fs/cgroup/cpu, or v2 with `cpu` enabled).

Run: .venv/bin/python benchmarks/cpu_share.py [--mode thread|group] [--hog-weight 4] -- COMMAND [ARGS...]
e.g. .venv/bin/python benchmarks/cpu_share.py -- .venv/bin/python benchmarks/latency.py
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from recorded import parse_rate

V1_ROOT = Path("/sys/fs/cgroup/cpu")
V2_ROOT = Path("/sys/fs/cgroup")
HOGS = "wikitide-hogs"
COMMAND_GROUP = "wikitide-measured"
DEFAULT_V1_SHARES = 1024
DEFAULT_V2_WEIGHT = 100


class CpuGroups:
    """The loops' cgroup and the command's, created on entry and removed on exit."""

    def __init__(self, hog_weight: float) -> None:
        if (V1_ROOT / "cpu.shares").exists():
            self.root, self.weight_file, default = V1_ROOT, "cpu.shares", DEFAULT_V1_SHARES
        elif "cpu" in (V2_ROOT / "cgroup.controllers").read_text(encoding="ascii").split():
            self.root, self.weight_file, default = V2_ROOT, "cpu.weight", DEFAULT_V2_WEIGHT
            (V2_ROOT / "cgroup.subtree_control").write_text("+cpu", encoding="ascii")
        else:
            raise SystemExit("no cpu cgroup controller found (v1 /sys/fs/cgroup/cpu, or v2 with cpu enabled)")
        self.hogs, self.command = self.root / HOGS, self.root / COMMAND_GROUP
        for group, weight in ((self.hogs, round(default * hog_weight)), (self.command, default)):
            group.mkdir(exist_ok=True)
            (group / self.weight_file).write_text(str(weight), encoding="ascii")

    def join(self, group: Path) -> None:
        """Move this process into `group` (its children start there)."""
        (group / "cgroup.procs").write_text(str(os.getpid()), encoding="ascii")

    def remove(self) -> None:
        for group in (self.hogs, self.command):
            for pid in (group / "cgroup.procs").read_text(encoding="ascii").split():
                (self.root / "cgroup.procs").write_text(pid, encoding="ascii")
            group.rmdir()


def start_hogs(groups: CpuGroups, hogs: list[subprocess.Popen[bytes]]) -> None:
    """One busy loop pinned to each core, in the loops' cgroup, each added to `hogs` as it starts (so that the
    caller stops every one that started, even if a later one fails to)."""
    for cpu in sorted(os.sched_getaffinity(0)):
        hogs.append(subprocess.Popen(
            [sys.executable, "-c", "while True: pass"],
            preexec_fn=lambda cpu=cpu: (os.sched_setaffinity(0, {cpu}), groups.join(groups.hogs)),  # type: ignore[misc]
        ))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("thread", "group"), default="thread")
    parser.add_argument("--hog-weight", type=float, default=4.0,
                        help="the loops' cgroup weight, in multiples of the default (default: 4)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    alone = parse_rate()
    groups = CpuGroups(args.hog_weight)
    hogs: list[subprocess.Popen[bytes]] = []
    child: subprocess.Popen[bytes] | None = None

    def _stop(signum: int, frame: object) -> None:
        if child is not None:
            child.send_signal(signum)

    try:
        start_hogs(groups, hogs)
        time.sleep(0.5)
        if args.mode == "group":
            groups.join(groups.command)
        slowed = parse_rate()
        print(f"cpu_share: one thread parses {slowed:,.0f} records/s under the loops ({args.mode} mode, loops' weight "
              f"{args.hog_weight:g}), {alone:,.0f} without: {slowed / alone:.2f} of this machine", flush=True)
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        child = subprocess.Popen(command)
        return child.wait()
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        groups.join(groups.root)
        groups.remove()


if __name__ == "__main__":
    sys.exit(main())
