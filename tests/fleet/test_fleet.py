"""The fleet under faults: real MultiLangDaemon workers on a 4-shard kinesis-mock stream, moto DynamoDB and
redis-server, with recorded events flowing all the time. After each scenario every event the source sent is in
the events table once and counted once in Redis and by the API.

KCL 3 assigns leases from an elected leader that holds a 2-minute DynamoDB lock (not configurable in 3.1.3):
the scenarios that take a worker away choose one that is not the leader, so what they measure is the lease
failover (failoverTimeMillis + the assignment interval), not the leader lock's expiry.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kcl_app.progress import read_journal, read_progress, shard_key
from producer.batcher import partition_key_for
from tests.fleet.conftest import CATCH_UP_TIMEOUT, RECORDING, SHARDS, FleetStack
from tests.fleet.harness import REPO, SHARD_END, Fleet, LeaseTable, Worker, wait_until
from tests.fleet.order import children_before_parents, first_positions, page_order_violations
from tests.fleet.traffic import REKEY_STEP, Sent, Traffic, load_events
from tests.recorded import counted_page, event_minute, events_table_key

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

BALANCE_TIMEOUT = 360.0  # KCL 3 balances by measured load, every few assignment rounds
FAILOVER_TIMEOUT = 120.0  # failoverTimeMillis 10 s + assignment every 5 s, with room for a loaded machine
# New child shards: leases created by the shard sync, then assigned, parents finished, consumers started; at a
# load average of 20-36 the 4->2->4 steps took over 120 s. A bound on a condition, not a wait.
CHILDREN_TIMEOUT = 300.0


def _all_owned_by(leases: LeaseTable, workers: list[str]) -> dict[str, str | None] | None:
    owners = leases.open_owners()
    if owners and all(owner in workers for owner in owners.values()):
        return owners
    return None


def _describe(leases: LeaseTable, fleet: Fleet) -> Callable[[], str]:
    return lambda: f"open leases {leases.open_owners()}, leader {leases.leader()}, running {fleet.running()}"


def _settled(fleet: Fleet, leases: LeaseTable, workers: list[str], timeout: float = BALANCE_TIMEOUT) -> None:
    """These workers running, and every open lease owned by one of them."""
    fleet.ensure(workers)
    wait_until(lambda: _all_owned_by(leases, workers), timeout=timeout, interval=2.0,
               describe=_describe(leases, fleet))


def _victim(fleet: Fleet, leases: LeaseTable, workers: list[str]) -> tuple[str, list[str]]:
    """With these workers settled, one that is not the leader and holds at least one lease, with its shards."""
    _settled(fleet, leases, workers)

    def candidate() -> tuple[str, list[str]] | None:
        leader = leases.leader()
        owners = leases.open_owners()
        for worker in workers:
            held = sorted(shard for shard, owner in owners.items() if owner == worker)
            if leader is not None and worker != leader and held:
                return worker, held
        return None

    return wait_until(candidate, timeout=BALANCE_TIMEOUT, interval=2.0, describe=_describe(leases, fleet))


def _assert_exactly_once(exactly_once: Callable[..., Any], measure: Callable[[str, object], None],
                         label: str) -> None:
    report = exactly_once()
    assert report.ok, str(report)
    measure(f"{label}: checker", str(report))


def test_a_two_workers_balance_four_shards_and_a_third_takes_its_share(
    fleet: Fleet, traffic: Traffic, leases: LeaseTable, exactly_once: Callable[..., Any],
    measure: Callable[[str, object], None],
) -> None:
    started = time.monotonic()
    fleet.ensure(["w1", "w2"])

    def two_each() -> bool:
        return leases.counts() == {"w1": 2, "w2": 2}

    wait_until(two_each, timeout=BALANCE_TIMEOUT, interval=2.0, describe=_describe(leases, fleet))
    measure("a: 2 workers from start to 2/2 leases", f"{time.monotonic() - started:.0f}s")

    joined = time.monotonic()
    fleet.start("w3")

    def third_has_share() -> bool:
        counts = leases.counts()
        return counts.get("w3", 0) >= 1 and sum(counts.get(w, 0) for w in ("w1", "w2", "w3")) == SHARDS

    wait_until(third_has_share, timeout=BALANCE_TIMEOUT, interval=2.0, describe=_describe(leases, fleet))
    measure("a: third worker from start to >=1 lease", f"{time.monotonic() - joined:.0f}s ({leases.counts()})")
    _assert_exactly_once(exactly_once, measure, "a")


PRODUCER_KEY_STEP = 999 * REKEY_STEP  # ids apart from every pass of the traffic's


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
    victim, held = _victim(fleet, leases, workers)
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
        wait_until(lambda: saved_offset() >= len(produced) // 4, timeout=FAILOVER_TIMEOUT, interval=0.5,
                   describe=lambda: f"saved offset {saved_offset()}; {log.read_text(errors='replace')[-1500:]}")
        os.killpg(producer.pid, signal.SIGKILL)
        producer.wait(timeout=10)
        killed_at = saved_offset()

        # A worker SIGKILLed with a batch stored and not checkpointed, while the producer is down.
        in_flight = _stop_mid_batch(fleet_stack, leases, fleet.workers[victim], held)
        unfinished = _times_processed(fleet_stack, in_flight.shard, in_flight.checkpoint, in_flight.processed)
        fleet.kill(victim)

        producer = start_producer()
        wait_until(lambda: positions.load_item() and positions.load_item()["last_event_id"] == last_id,
                   timeout=CATCH_UP_TIMEOUT, interval=1.0, describe=lambda: f"saved offset {saved_offset()}")
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
    wait_until(lambda: _all_owned_by(leases, survivors), timeout=FAILOVER_TIMEOUT, interval=1.0,
               describe=_describe(leases, fleet))
    # The traffic's records after the producer's last one put every open shard's tip past the producer's
    # records, so the check's wait for every shard's checkpoint covers them.
    after = len(traffic.sent)
    wait_until(lambda: {s["ShardId"] for s in _open_shards(fleet_stack)} <= {s.shard_id for s in traffic.sent[after:]},
               timeout=FAILOVER_TIMEOUT, interval=1.0)
    report = exactly_once(also=produced)
    assert report.ok, str(report)
    measure("f: checker (traffic + real producer)", str(report))

    again = _times_processed(fleet_stack, in_flight.shard, in_flight.checkpoint, in_flight.processed)
    redelivered = [sequence for sequence in unfinished if again[sequence] > unfinished[sequence]]
    measure("f: producer + worker SIGKILL", f"producer killed with offset {killed_at} of {len(produced) - 1} saved, "
            f"resumed after it; {victim} killed with {len(unfinished)} records of {in_flight.shard} not "
            f"checkpointed, {len(redelivered)} processed again; {len(produced)} produced events each counted once")
    assert unfinished and sorted(redelivered) == sorted(unfinished), (unfinished, again)


def _workers_command(fleet_stack: FleetStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wikitide", "workers", *args], env={**os.environ, **fleet_stack.env},
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_workers_command_shows_owners_checkpoints_and_lag(
    fleet: Fleet, fleet_stack: FleetStack, traffic: Traffic, leases: LeaseTable,
    measure: Callable[[str, object], None],
) -> None:
    workers = fleet.running() or ["w1", "w2", "w3"]
    _settled(fleet, leases, workers)
    settled_ms = int(time.time() * 1000)

    def every_open_shard_processed_since() -> bool:
        progress = read_progress(fleet_stack.redis)
        return all(shard in progress and progress[shard].processed_at_ms > settled_ms
                   for shard in leases.open_owners())

    wait_until(every_open_shard_processed_since, timeout=FAILOVER_TIMEOUT, interval=0.5,
               describe=lambda: str(read_progress(fleet_stack.redis)))

    answer = _workers_command(fleet_stack, "--json")
    assert answer.returncode == 0, answer.stderr
    rows = {row["shard_id"]: row for row in json.loads(answer.stdout)}
    owners = leases.open_owners()
    assert {shard for shard, row in rows.items() if row["is_open"]} == set(owners)
    for shard, owner in owners.items():
        row = rows[shard]
        assert row["owner"] == owner and row["owner"] in workers
        assert row["checkpoint"] and row["checkpoint"].isdigit(), row  # a sequence number: batches were checkpointed
        assert row["lag_ms"] is not None and 0 <= row["lag_ms"] < 60_000, row
        assert row["last_batch_age_ms"] is not None and row["last_batch_age_ms"] < 60_000, row

    table = _workers_command(fleet_stack)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split()[:5] == ["SHARD", "PARENTS", "STATE", "OWNER", "CHECKPOINT"]
    assert f"{len(owners)} open shards" in table.stdout
    for worker in set(owners.values()):
        assert worker is not None and worker in table.stdout
    measure("wikitide workers", "\n" + table.stdout.rstrip())


def test_b_sigterm_hands_leases_over_after_a_final_checkpoint(
    fleet: Fleet, traffic: Traffic, leases: LeaseTable, exactly_once: Callable[..., Any],
    measure: Callable[[str, object], None],
) -> None:
    workers = ["w1", "w2", "w3"]
    victim, held = _victim(fleet, leases, workers)
    processor_log, fleet_log = fleet.workers[victim].processor_log, fleet.workers[victim].log
    already = processor_log.stat().st_size  # rebalancing hands leases over the same way: only the stop counts
    stopped = time.monotonic()
    code = fleet.stop(victim)
    exit_seconds = time.monotonic() - stopped
    survivors = [w for w in workers if w != victim]
    wait_until(lambda: _all_owned_by(leases, survivors), timeout=FAILOVER_TIMEOUT, interval=1.0,
               describe=_describe(leases, fleet))
    measure("b: SIGTERM", f"{victim} held {held}, exited with {code} after {exit_seconds:.0f}s, "
            f"leases with the others {time.monotonic() - stopped:.0f}s after the signal")
    assert code == 0, code  # a stop that was asked for is a clean exit
    assert "Process shutdown is complete." in fleet_log.read_text(errors="replace")
    with processor_log.open("rb") as handle:
        handle.seek(already)
        log = handle.read().decode(errors="replace")
    for shard in held:
        assert f"shard {shard}: shutdown requested, final checkpoint" in log, f"no final checkpoint of {shard}"
    _assert_exactly_once(exactly_once, measure, "b")


def _just_after_a_batch(fleet_stack: FleetStack, shards: list[str], timeout: float = 30.0) -> None:
    """Return as soon as one of these shards reports a new batch: its records are stored and its checkpoint is
    under way."""
    def batches() -> list[str | None]:
        return [fleet_stack.redis.hget(shard_key(shard), "records") for shard in shards]

    before = batches()
    deadline = time.monotonic() + timeout
    while batches() == before:
        assert time.monotonic() < deadline, f"no batch on {shards} within {timeout:.0f}s"
        time.sleep(0.002)


@dataclass(frozen=True)
class InFlight:
    """A batch stored (the shard's progress reports it) but not checkpointed (the lease table does not)."""

    shard: str
    checkpoint: int
    processed: int
    attempts: int


def _stop_mid_batch(fleet_stack: FleetStack, leases: LeaseTable, worker: Worker, shards: list[str],
                    timeout: float = 180.0) -> InFlight:
    """SIGSTOP the worker's whole process group right after one of its shards reported a stored batch, and
    keep it stopped only when the lease table shows that batch not yet checkpointed; otherwise SIGCONT and try
    again with the next batch (bounded). The stopped worker then holds records that a processor has stored and
    that its shard's checkpoint does not cover: whoever takes the shard over must process them again."""
    deadline = time.monotonic() + timeout
    attempts = 0
    while time.monotonic() < deadline:
        _just_after_a_batch(fleet_stack, shards)
        worker.signal_group(signal.SIGSTOP)
        attempts += 1
        checkpoints = {lease.shard_id: lease.checkpoint for lease in leases.leases()}
        for shard in shards:
            processed, checkpoint = fleet_stack.redis.hget(shard_key(shard), "sequence"), checkpoints.get(shard)
            if processed and checkpoint and checkpoint.isdigit() and int(processed) > int(checkpoint):
                return InFlight(shard, int(checkpoint), int(processed), attempts)
        worker.signal_group(signal.SIGCONT)
    raise AssertionError(f"no batch of {shards} caught between store and checkpoint in {attempts} tries")


def _times_processed(fleet_stack: FleetStack, shard: str, after: int, up_to: int) -> Counter[str]:
    """How often the journal shows each record of `shard` with `after` < sequence <= `up_to` processed."""
    return Counter(
        sequence for journal_shard, sequence in read_journal(fleet_stack.redis)
        if journal_shard == shard and after < int(sequence) <= up_to
    )


def _checkpoint_of(leases: LeaseTable, shard: str) -> str | None:
    return next((lease.checkpoint for lease in leases.leases() if lease.shard_id == shard), None)


def _past(checkpoint: str | None, sequence: int) -> bool:
    return checkpoint == SHARD_END or bool(checkpoint and checkpoint.isdigit() and int(checkpoint) >= sequence)


def test_c_sigkill_mid_batch_redelivers_the_unfinished_batch_to_another_worker(
    fleet: Fleet, fleet_stack: FleetStack, traffic: Traffic, leases: LeaseTable, exactly_once: Callable[..., Any],
    measure: Callable[[str, object], None],
) -> None:
    workers = ["w1", "w2", "w3"]
    victim, held = _victim(fleet, leases, workers)
    in_flight = _stop_mid_batch(fleet_stack, leases, fleet.workers[victim], held)
    unfinished = _times_processed(fleet_stack, in_flight.shard, in_flight.checkpoint, in_flight.processed)
    assert unfinished, in_flight  # stored (in the journal), not checkpointed
    killed = time.monotonic()
    fleet.kill(victim)
    survivors = [w for w in workers if w != victim]
    wait_until(lambda: _all_owned_by(leases, survivors), timeout=FAILOVER_TIMEOUT, interval=1.0,
               describe=_describe(leases, fleet))
    taken = time.monotonic() - killed
    _assert_exactly_once(exactly_once, measure, "c")

    again = _times_processed(fleet_stack, in_flight.shard, in_flight.checkpoint, in_flight.processed)
    redelivered = sorted(sequence for sequence in unfinished if again[sequence] > unfinished[sequence])
    measure("c: SIGKILL mid-batch", f"{victim} (not the leader) held {held}; killed with {len(unfinished)} records "
            f"of {in_flight.shard} stored but not checkpointed (caught on try {in_flight.attempts}); leases with "
            f"the others {taken:.0f}s after the kill; {len(redelivered)} of them processed again, counted once")
    assert redelivered == sorted(unfinished), (
        f"records stored before the kill and not processed again: {sorted(set(unfinished) - set(redelivered))[:5]}")


def test_e_a_paused_zombie_is_refused_its_checkpoint_and_counts_nothing_twice(
    fleet: Fleet, fleet_stack: FleetStack, traffic: Traffic, leases: LeaseTable, exactly_once: Callable[..., Any],
    measure: Callable[[str, object], None],
) -> None:
    workers = ["w1", "w2", "w3"]
    victim, held = _victim(fleet, leases, workers)
    zombie = fleet.workers[victim]
    log_at = zombie.processor_log.stat().st_size
    paused = time.monotonic()
    in_flight = _stop_mid_batch(fleet_stack, leases, zombie, held)
    try:
        survivors = [w for w in workers if w != victim]
        wait_until(lambda: _all_owned_by(leases, survivors), timeout=FAILOVER_TIMEOUT, interval=1.0,
                   describe=_describe(leases, fleet))
        taken = time.monotonic() - paused
        # The new owner processes the zombie's unfinished batch again and checkpoints past it.
        wait_until(lambda: _past(_checkpoint_of(leases, in_flight.shard), in_flight.processed),
                   timeout=FAILOVER_TIMEOUT, interval=1.0,
                   describe=lambda: f"{in_flight}: checkpoint {_checkpoint_of(leases, in_flight.shard)}")
    finally:
        zombie.signal_group(signal.SIGCONT)
    resumed = time.monotonic()
    refusals = (f"shard {in_flight.shard}: shutting down, checkpoint skipped",
                f"shard {in_flight.shard}: invalid state on checkpoint", f"shard {in_flight.shard}: checkpoint failed")

    def zombie_log() -> str:
        with zombie.processor_log.open("rb") as handle:
            handle.seek(log_at)
            return handle.read().decode(errors="replace")

    # The zombie wakes inside process_records with the batch stored and asks for its checkpoint: refused.
    refused = wait_until(lambda: [line for line in zombie_log().splitlines() if any(r in line for r in refusals)],
                         timeout=FAILOVER_TIMEOUT, interval=0.5, describe=lambda: zombie_log()[-2000:])
    measure("e: SIGSTOP", f"{victim} held {held}, stopped with {in_flight} (not checkpointed); leases with the "
            f"others {taken:.0f}s after the pause; paused {resumed - paused:.0f}s; after resume its checkpoint "
            f"was refused {time.monotonic() - resumed:.1f}s later: {refused[0].split(': ', 1)[-1]}")
    assert _past(_checkpoint_of(leases, in_flight.shard), in_flight.processed)
    _assert_exactly_once(exactly_once, measure, "e")
    twice = _times_processed(fleet_stack, in_flight.shard, in_flight.checkpoint, in_flight.processed)
    assert twice and all(n >= 2 for n in twice.values()), twice  # the zombie's and the new owner's: absorbed
    measure("e: records of the zombie's unfinished batch processed again by the new owner", len(twice))


def _wait_active(fleet_stack: FleetStack) -> None:
    def active() -> bool:
        summary = fleet_stack.kinesis.describe_stream_summary(StreamName=fleet_stack.stream)
        return bool(summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE")

    wait_until(active, timeout=60, interval=0.5)


def _open_shards(fleet_stack: FleetStack) -> list[dict[str, Any]]:
    shards = fleet_stack.kinesis.list_shards(StreamName=fleet_stack.stream)["Shards"]
    return sorted(
        (s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]),
        key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]),
    )


def _parents(fleet_stack: FleetStack) -> dict[str, list[str]]:
    shards = fleet_stack.kinesis.list_shards(StreamName=fleet_stack.stream)["Shards"]
    return {
        s["ShardId"]: [p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p] for s in shards
    }


def _children_started(leases: LeaseTable, fleet_stack: FleetStack, workers: list[str]) -> bool:
    """Every open shard has a lease owned by a running worker, and has made progress (processed a batch)."""
    owners = leases.open_owners()
    open_ids = {s["ShardId"] for s in _open_shards(fleet_stack)}
    progressed = {key.rsplit(":", 1)[-1] for key in fleet_stack.redis.scan_iter(match="wt:kcl:shard:*")}
    return open_ids <= set(owners) and all(owners[s] in workers for s in open_ids) and open_ids <= progressed


def test_d_resharding_under_load_keeps_parents_before_children_and_page_order(
    fleet: Fleet, fleet_stack: FleetStack, traffic: Traffic, leases: LeaseTable,
    exactly_once: Callable[..., Any], measure: Callable[[str, object], None],
) -> None:
    workers = ["w1", "w2"]
    _settled(fleet, leases, workers)
    assert len(_open_shards(fleet_stack)) == SHARDS

    merging = time.monotonic()
    shards = _open_shards(fleet_stack)
    for left, right in ((shards[0], shards[1]), (shards[2], shards[3])):
        fleet_stack.kinesis.merge_shards(
            StreamName=fleet_stack.stream, ShardToMerge=left["ShardId"], AdjacentShardToMerge=right["ShardId"]
        )
        _wait_active(fleet_stack)
    assert len(_open_shards(fleet_stack)) == 2
    wait_until(lambda: _children_started(leases, fleet_stack, workers), timeout=CHILDREN_TIMEOUT, interval=1.0,
               describe=_describe(leases, fleet))
    measure("d: MergeShards 4->2", f"merged children processing {time.monotonic() - merging:.0f}s after the merge")

    splitting = time.monotonic()
    fleet_stack.kinesis.update_shard_count(
        StreamName=fleet_stack.stream, TargetShardCount=SHARDS, ScalingType="UNIFORM_SCALING"
    )
    _wait_active(fleet_stack)
    assert len(_open_shards(fleet_stack)) == SHARDS
    wait_until(lambda: _children_started(leases, fleet_stack, workers), timeout=CHILDREN_TIMEOUT, interval=1.0,
               describe=_describe(leases, fleet))
    measure("d: UpdateShardCount 2->4", f"split children processing {time.monotonic() - splitting:.0f}s after it")

    splitting = time.monotonic()
    widest = _open_shards(fleet_stack)[0]
    low, high = (int(widest["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
    fleet_stack.kinesis.split_shard(
        StreamName=fleet_stack.stream, ShardToSplit=widest["ShardId"], NewStartingHashKey=str((low + high) // 2)
    )
    _wait_active(fleet_stack)
    assert len(_open_shards(fleet_stack)) == SHARDS + 1
    wait_until(lambda: _children_started(leases, fleet_stack, workers), timeout=CHILDREN_TIMEOUT, interval=1.0,
               describe=_describe(leases, fleet))
    measure("d: SplitShard 4->5", f"split children processing {time.monotonic() - splitting:.0f}s after it")
    report = exactly_once(hold=True)
    try:
        assert report.ok, str(report)
        measure("d: checker", str(report))
        journal = read_journal(fleet_stack.redis)
        sent = traffic.sent
    finally:
        traffic.resume()
    first = first_positions(journal)
    parents = _parents(fleet_stack)
    early = children_before_parents(parents, first)
    assert not early, early
    resharded = [c for c, p in parents.items() if p]
    assert len(resharded) == 2 + SHARDS + 2, parents

    minutes = [s.minute for s in sent]
    measure("d: event time checked", f"{max(minutes) - min(minutes) + 1} minutes, {len(sent)} records sent")
    assert max(minutes) - min(minutes) >= 30, "the stream must span at least 30 minutes of event time"

    violations = page_order_violations(sent, first)
    assert not violations, violations[:10]
    pages = len({s.page for s in sent})
    measure("d: order", f"{len(sent)} records on {pages} pages in page order; {len(journal)} journal entries; "
            f"children after parents for {len(resharded)} child shards")
