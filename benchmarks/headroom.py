"""Headroom of the local stack: the pipeline at 10x the live rate for 5 minutes against the emulators' own
ceilings, measured in the same run (this machine is shared and its speed varies about 2x between machines of its
kind). `benchmarks/burst.py` with no burst: the ceilings of `benchmarks/ceilings.py`, then the pipeline at
`--rate` for `--seconds`; the goal is the rate kept (the paced source sent at least 98 % of it: the producer's
writes did not push back), every event counted exactly once within 90 s of the last one sent, and, where an
emulator is the wall, a processing rate of at least 80 % of the ceiling its plain-loop ceilings and the pipeline's
calls per event imply.

Run: .venv/bin/python benchmarks/headroom.py [--rate 300] [--seconds 300] [--probe 10]
The baseline without aggregated Kinesis records: WIKITIDE_KINESIS_AGGREGATE=off .venv/bin/python benchmarks/headroom.py
"""

from __future__ import annotations

import argparse
import os

import ceilings
from burst import LIVE_RATE, Phase, run_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10 * LIVE_RATE, help="events per second (10x the live rate)")
    parser.add_argument("--seconds", type=float, default=300.0, help="seconds at that rate")
    parser.add_argument("--probe", type=float, default=10.0, help="seconds per ceiling probe")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="seconds to wait for the backlog")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    limits = ceilings.measure(args.probe)
    met = run_pipeline([Phase("sustained", args.rate, args.seconds)], limits, drain_timeout=args.drain_timeout,
                       require_rate=True)
    print(f"headroom goal (the rate kept, exactly once, drained within 90 s): {'met' if met else 'NOT met'}; "
          f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
