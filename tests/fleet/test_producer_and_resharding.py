"""The fleet with the real producer (f: a producer SIGKILL and a worker SIGKILL in one run) and under resharding
(d: 4->2->4->5 shards under load). After each scenario every event the sources sent is in the events table
once and counted once in Redis and by the API.

f runs first, while the stream is small: kinesis-mock's `PutRecords` slows down as a stream grows (README), and
the producer uses `PutRecords`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kcl_app.progress import read_journal
from producer.batcher import partition_key_for
from tests.fleet import steps
from tests.fleet.conftest import CATCH_UP_TIMEOUT, RECORDING, SHARDS, FleetStack
from tests.fleet.harness import REPO, Fleet, LeaseTable, wait_until, wait_while_progressing
from tests.fleet.order import children_before_parents, first_positions, page_order_violations
from tests.fleet.traffic import REKEY_STEP, Sent, Traffic, load_events
from tests.recorded import counted_page, event_minute, events_table_key

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


PRODUCER_KEY_STEP = 999 * REKEY_STEP  # ids apart from every pass of the traffic's
EVENT_MINUTES = 30  # the event time d's stream must span, so that windows of many minutes are checked


def _minutes_spanned(sent: list[Sent]) -> int:
    minutes = [record.minute for record in sent]
    return max(minutes) - min(minutes) + 1 if minutes else 0


def _producer_recording(tmp: Path) -> tuple[Path, list[Sent]]:
    """The fleet's recording with ids of its own, as NDJSON for `wikitide produce --source replay:PATH`, and
    what it must add to the stores (read from the JSON, as the traffic's records are)."""
    lines, sent = [], []
    for event in load_events(RECORDING):
        event["meta"]["id"] = f"{event['meta']['id']}-producer"
        if isinstance(event.get("id"), int):
            event["id"] += PRODUCER_KEY_STEP
        revision = event.get("revision")
        if isinstance(revision, dict) and isinstance(revision.get("new"), int):
            revision["new"] += PRODUCER_KEY_STEP
        lines.append(json.dumps(event, ensure_ascii=False))
        sent.append(Sent(events_table_key(event), event_minute(event), partition_key_for(event), "", "", False,
                         wiki=event["wiki"], counted_page=counted_page(event)))
    path = tmp / "producer-recording.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, sent


def test_f_real_producer_and_fleet_lose_and_double_nothing_across_a_producer_and_a_worker_sigkill(
    fleet: Fleet, fleet_stack: FleetStack, traffic: Traffic, leases: LeaseTable, exactly_once: Callable[..., Any],
    measure: Callable[[str, object], None], tmp_path: Path,
) -> None:
    from producer.frames import replay_id
    from producer.positions import PositionStore

    # Early in the session: kinesis-mock's PutRecords slows down as the stream grows (README), and the
    # producer uses PutRecords.
    workers = ["w1", "w2", "w3"]
    victim, held = steps.victim(fleet, leases, workers)
    path, produced = _producer_recording(tmp_path)
    source = f"replay:{path}"
    last_id = replay_id(len(produced) - 1)
    positions = PositionStore(fleet_stack.dynamodb, fleet_stack.producer_state_table, source)
    log = tmp_path / "producer.log"

    def start_producer() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "wikitide", "produce", "--source", source, "--speed", "1"], cwd=REPO,
                env={**os.environ, **fleet_stack.env}, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )

    def saved_offset() -> int:
        item = positions.load_item()
        return int(json.loads(item["last_event_id"])[0]["offset"]) if item else -1

    producer = start_producer()
    try:
        # SIGKILL the producer once part of the recording is in Kinesis (its saved position says so).
        wait_while_progressing(lambda: saved_offset() >= len(produced) // 4, saved_offset,
                               stall=steps.FAILOVER_TIMEOUT, timeout=CATCH_UP_TIMEOUT, interval=0.5,
                               describe=lambda: log.read_text(errors="replace")[-1500:])
        os.killpg(producer.pid, signal.SIGKILL)
        producer.wait(timeout=10)
        killed_at = saved_offset()

        # A worker SIGKILLed with a batch stored and not checkpointed, while the producer is down.
        in_flight = steps.stop_mid_batch(fleet_stack, leases, fleet.workers[victim], held)
        unfinished = steps.times_processed(fleet_stack, in_flight.shard, in_flight.checkpoint, in_flight.processed)
        fleet.kill(victim)

        producer = start_producer()

        def at_the_end() -> bool:
            item = positions.load_item()
            return item is not None and item["last_event_id"] == last_id

        wait_while_progressing(at_the_end, saved_offset,
                               stall=steps.FAILOVER_TIMEOUT, timeout=2 * CATCH_UP_TIMEOUT,
                               describe=lambda: log.read_text(errors="replace")[-1500:])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(producer.pid, signal.SIGTERM)
        try:
            producer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(producer.pid, signal.SIGKILL)
            producer.wait(timeout=10)
    producer_log = log.read_text(errors="replace")
    assert f"resuming {source} after Last-Event-ID {replay_id(killed_at)}" in producer_log, producer_log[-2000:]

    survivors = [w for w in workers if w != victim]
    wait_until(lambda: steps.all_owned_by(leases, survivors), timeout=steps.FAILOVER_TIMEOUT, interval=1.0,
               describe=steps.describe(leases, fleet))
    # The traffic's records after the producer's last one put every open shard's tip past the producer's
    # records, so the check's wait for every shard's checkpoint covers them.
    after = len(traffic.sent)

    def every_open_shard_sent_to() -> bool:
        return {s["ShardId"] for s in steps.open_shards(fleet_stack)} <= {s.shard_id for s in traffic.sent[after:]}

    wait_until(every_open_shard_sent_to, timeout=steps.FAILOVER_TIMEOUT, interval=1.0)
    report = exactly_once(also=produced)
    assert report.ok, str(report)
    measure("f: checker (traffic + real producer)", str(report))

    again = steps.times_processed(fleet_stack, in_flight.shard, in_flight.checkpoint, in_flight.processed)
    redelivered = [sequence for sequence in unfinished if again[sequence] > unfinished[sequence]]
    measure("f: producer + worker SIGKILL", f"producer killed with offset {killed_at} of {len(produced) - 1} saved, "
            f"resumed after it; {victim} killed with {len(unfinished)} records of {in_flight.shard} not "
            f"checkpointed, {len(redelivered)} processed again; {len(produced)} produced events each counted once")
    assert unfinished and sorted(redelivered) == sorted(unfinished), (unfinished, again)


def test_d_resharding_under_load_keeps_parents_before_children_and_page_order(
    fleet: Fleet, fleet_stack: FleetStack, traffic: Traffic, leases: LeaseTable,
    exactly_once: Callable[..., Any], measure: Callable[[str, object], None],
) -> None:
    workers = ["w1", "w2"]
    steps.settled(fleet, leases, workers)
    assert len(steps.open_shards(fleet_stack)) == SHARDS

    merging = time.monotonic()
    shards = steps.open_shards(fleet_stack)
    for left, right in ((shards[0], shards[1]), (shards[2], shards[3])):
        fleet_stack.kinesis.merge_shards(
            StreamName=fleet_stack.stream, ShardToMerge=left["ShardId"], AdjacentShardToMerge=right["ShardId"]
        )
        steps.wait_active(fleet_stack)
    assert len(steps.open_shards(fleet_stack)) == 2
    wait_until(lambda: steps.children_started(leases, fleet_stack, workers), timeout=steps.CHILDREN_TIMEOUT,
               interval=1.0,
               describe=steps.describe(leases, fleet))
    measure("d: MergeShards 4->2", f"merged children processing {time.monotonic() - merging:.0f}s after the merge")

    splitting = time.monotonic()
    fleet_stack.kinesis.update_shard_count(
        StreamName=fleet_stack.stream, TargetShardCount=SHARDS, ScalingType="UNIFORM_SCALING"
    )
    steps.wait_active(fleet_stack)
    assert len(steps.open_shards(fleet_stack)) == SHARDS
    wait_until(lambda: steps.children_started(leases, fleet_stack, workers), timeout=steps.CHILDREN_TIMEOUT,
               interval=1.0,
               describe=steps.describe(leases, fleet))
    measure("d: UpdateShardCount 2->4", f"split children processing {time.monotonic() - splitting:.0f}s after it")

    splitting = time.monotonic()
    widest = steps.open_shards(fleet_stack)[0]
    low, high = (int(widest["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
    fleet_stack.kinesis.split_shard(
        StreamName=fleet_stack.stream, ShardToSplit=widest["ShardId"], NewStartingHashKey=str((low + high) // 2)
    )
    steps.wait_active(fleet_stack)
    assert len(steps.open_shards(fleet_stack)) == SHARDS + 1
    wait_until(lambda: steps.children_started(leases, fleet_stack, workers), timeout=steps.CHILDREN_TIMEOUT,
               interval=1.0,
               describe=steps.describe(leases, fleet))
    measure("d: SplitShard 4->5", f"split children processing {time.monotonic() - splitting:.0f}s after it")
    # The traffic's event time moves on with each pass over the recording, not with the clock: on a fast machine
    # the reshards are done before the second pass begins, so the check waits for the span it needs.
    wait_until(lambda: _minutes_spanned(traffic.sent) > EVENT_MINUTES, timeout=600, interval=2.0,
               describe=lambda: f"{_minutes_spanned(traffic.sent)} minutes of event time sent")
    report = exactly_once(hold=True)
    try:
        assert report.ok, str(report)
        measure("d: checker", str(report))
        journal = read_journal(fleet_stack.redis)
        sent = traffic.sent
    finally:
        traffic.resume()
    first = first_positions(journal)
    parents = steps.parents(fleet_stack)
    early = children_before_parents(parents, first)
    assert not early, early
    resharded = [c for c, p in parents.items() if p]
    assert len(resharded) == 2 + SHARDS + 2, parents

    measure("d: event time checked", f"{_minutes_spanned(sent)} minutes, {len(sent)} records sent")
    assert _minutes_spanned(sent) > EVENT_MINUTES, "the stream must span at least 30 minutes of event time"

    violations = page_order_violations(sent, first)
    assert not violations, violations[:10]
    pages = len({s.page for s in sent})
    measure("d: order", f"{len(sent)} records on {pages} pages in page order; {len(journal)} journal entries; "
            f"children after parents for {len(resharded)} child shards")
