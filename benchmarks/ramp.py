"""Shards that follow the traffic, on the local stack: a ramp down, up and down again through the real producer,
KCL worker, processors and shard scaler (`wikitide.scaling`), with every event counted exactly once.

The live stream's 30 -> 600 -> 30 events/s cannot run here (the whole local stack counts 40-150 events/s on this
machine kind, `benchmarks/burst.py`), so the ramp runs at a thirty-third of the rates with shards a thirty-third
the size (`ShardPolicy`'s `shard_bytes_per_second` and `shard_records_per_second`, 3% of Kinesis's): the decisions
are those of the full-size ramp (`tests/unit/test_shard_scaling.py`), and what is real is everything they set off:
`UpdateShardCount` on kinesis-mock, the KCL worker taking the child shards after their parents' end, the
processors' exactly-once counting across the reshard: at the end every change sent is in the events table once
and the API's count equals what was sent.

kinesis-mock publishes no CloudWatch metrics, so this process stands in for Kinesis's own: every 5 s it puts into
moto's CloudWatch (namespace AWS/Kinesis, the stream's name as dimension) the events its paced source delivered to
the producer in those 5 s as `IncomingRecords`, times the measured mean record size (1,215 bytes,
`wikitide/cost/measured.json`) as `IncomingBytes` (the producer writes what it reads within about a second: its
`BacklogEntries` metric). The scaler reads them as on AWS: the busiest minute of its window (here 1 minute, stepped
every 10 s; cool-downs 60 s out, 120 s in).

Phases (events/s for seconds): `--low` for 150, `--high` for 210, `--low` for 300. The stream starts with the
template's 2 shards: expected, 2 -> 1 in the first low phase, 1 -> 2 in the high one, 2 -> 1 in the last.

Run: .venv/bin/python benchmarks/ramp.py [--low 6] [--high 24]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from burst import Phase, Schedule
from latency import (
    REPO,
    Observed,
    Sent,
    current_count,
    local_up_command,
    paced_frames,
    poll,
    stop_launcher,
    wait_until,
)

from producer.replay import ReplayServer
from wikitide.aws import make_client
from wikitide.localstack.services import free_port
from wikitide.scaling.service import ChangeLog, ShardScaler
from wikitide.scaling.shards import SHARD_BYTES_PER_SECOND, SHARD_RECORDS_PER_SECOND, Decision, ShardPolicy
from wikitide.settings import Settings
from wikitide.stack import read_outputs

SHARD_FRACTION = 0.03
RECORD_BYTES = 1215
METRICS_EVERY = 5.0
STEP_EVERY = 10.0


def stand_in_for_kinesis_metrics(cloudwatch: Any, stream: str, sent: Sent, stop: threading.Event) -> None:
    """What Kinesis publishes for the stream, from what the source delivered, every `METRICS_EVERY` seconds."""
    before = sent.count()
    while not stop.wait(METRICS_EVERY):
        now = sent.count()
        records, before = now - before, now
        cloudwatch.put_metric_data(Namespace="AWS/Kinesis", MetricData=[
            {"MetricName": name, "Dimensions": [{"Name": "StreamName", "Value": stream}],
             "Timestamp": datetime.now(UTC), "Value": value, "Unit": unit}
            for name, value, unit in (("IncomingRecords", records, "Count"),
                                      ("IncomingBytes", records * RECORD_BYTES, "Bytes"))
        ])


def stored_keys(dynamodb: Any, table: str) -> set[str]:
    """The de-duplication keys of every change stored (one item each)."""
    pages = dynamodb.get_paginator("scan").paginate(TableName=table, ProjectionExpression="pk", ConsistentRead=True)
    return {item["pk"]["S"] for page in pages for item in page.get("Items", [])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--low", type=float, default=6.0, help="events/s of the low phases")
    parser.add_argument("--high", type=float, default=24.0, help="events/s of the high phase")
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    args = parser.parse_args()
    phases = [Phase("low", args.low, 150), Phase("high", args.high, 210), Phase("low again", args.low, 300)]
    policy = ShardPolicy(cooldown_out=60, cooldown_in=120,
                         shard_bytes_per_second=SHARD_FRACTION * SHARD_BYTES_PER_SECOND,
                         shard_records_per_second=SHARD_FRACTION * SHARD_RECORDS_PER_SECOND)
    print(f"load average before: {os.getloadavg()}", flush=True)
    schedule = Schedule(phases)
    sent, observed, stop = Sent(), Observed(), threading.Event()
    steps: list[tuple[float, int, Decision]] = []
    with contextlib.ExitStack() as cleanup:
        workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
        server = cleanup.enter_context(ReplayServer(paced_frames(schedule.rate, 1.0, sent)))
        cleanup.callback(sent.close)
        api_port, moto_port = free_port(), free_port()
        command = local_up_command(server.url, workdir / "state", api_port=api_port, moto_port=moto_port)
        log = (workdir / "launcher.log").open("wb")
        cleanup.callback(log.close)
        launcher = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        left: list[str] = []
        cleanup.callback(lambda: left.extend(stop_launcher(launcher)))
        poller = threading.Thread(target=poll, args=(f"http://127.0.0.1:{api_port}", 0.25, observed, stop),
                                  daemon=True)
        poller.start()
        cleanup.callback(poller.join, 10)
        cleanup.callback(stop.set)

        wait_until(lambda: current_count(observed) > 0, 300, "event counted by the API", launcher)
        registration = json.loads((workdir / "state" / "local-stack.json").read_text(encoding="utf-8"))
        os.environ.update(registration["env"])
        settings = Settings.from_env()
        stream = read_outputs(make_client(settings, "cloudformation"), settings.stack_name).stream_name
        cloudwatch, kinesis = make_client(settings, "cloudwatch"), make_client(settings, "kinesis")
        scaler = ShardScaler(cloudwatch, kinesis, stream, ChangeLog(workdir / "shard-changes.json"), policy=policy,
                             window_minutes=1)

        def shards() -> int:
            return int(kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
                       ["OpenShardCount"])

        start = schedule.start()
        sent.full_rate.set()
        bridge = threading.Thread(target=stand_in_for_kinesis_metrics, args=(cloudwatch, stream, sent, stop),
                                  daemon=True)
        bridge.start()
        end = start + sum(p.seconds for p in phases)
        while time.monotonic() < end:
            if launcher.poll() is not None:
                raise RuntimeError(f"the launcher exited ({launcher.returncode}) during the ramp")
            decision = scaler.step()
            steps.append((time.monotonic() - start, shards(), decision))
            if decision.target is not None:
                print(f"  {steps[-1][0]:5.0f} s: {decision.reason} -> {decision.target} shards", flush=True)
            time.sleep(STEP_EVERY)
        total = sent.close()
        last_sent = time.monotonic()
        drained = None
        while time.monotonic() < last_sent + args.drain_timeout and launcher.poll() is None:
            if current_count(observed) >= total:
                drained = time.monotonic() - last_sent
                break
            time.sleep(1)
        time.sleep(2)  # a count beyond what was sent (a double count) would show by now
        final = current_count(observed)
        open_at_end = shards()
        held = stored_keys(make_client(settings, "dynamodb"),
                           read_outputs(make_client(settings, "cloudformation"), settings.stack_name).events_table)
        stop.set()
        left.extend(stop_launcher(launcher))

    print(f"\nramp at {SHARD_FRACTION:.0%} of the rates, shards of {SHARD_FRACTION:.0%} "
          f"({policy.shard_records_per_second:g} records/s, {policy.shard_bytes_per_second:,.0f} bytes/s):")
    for phase, low, high in schedule.spans():
        counts = [n for t, n, _ in steps if low - start <= t < high - start]
        print(f"  {phase.name}: {phase.rate:g} events/s for {phase.seconds:g} s; open shards seen "
              f"{sorted(set(counts)) or '-'}")
    changes = [(t, d) for t, _, d in steps if d.target is not None]
    print(f"  shard-count changes: {len(changes)}: " + "; ".join(f"at {t:.0f} s to {d.target}" for t, d in changes))
    print(f"  open shards at the end: {open_at_end}")
    drain = "NOT drained" if drained is None else f"drained {drained:.1f} s after the last event"
    with sent.lock:
        keys = set(sent.keys)
    missing, extra = len(keys - held), len(held - keys)
    print(f"  events table: {len(held):,} changes stored, {missing} sent and not stored, {extra} stored and not sent")
    once = final == total and not missing and not extra
    print(f"  {'every event counted once' if once else 'MISMATCH'}: {final:,} counted of {total:,} sent "
          f"(every change stored, so an equal count has no double in it); {drain}; "
          f"processes left after SIGINT: {left or 'none'}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
