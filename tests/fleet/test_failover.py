"""The fleet under worker faults: real MultiLangDaemon workers on a 4-shard kinesis-mock stream, moto DynamoDB
and redis-server, with recorded events flowing all the time: balancing (a), the `workers` command, SIGTERM (b),
SIGKILL mid-batch (c) and a SIGSTOPped zombie (e). After each scenario every event the source sent is in the
events table once and counted once in Redis and by the API.

This file and `test_producer_and_resharding.py` are separate xdist units, so each runs its own stack and fleet
on its own worker; run alone or in one process they share the package's stack (`conftest.py`).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from kcl_app.progress import read_progress
from tests.fleet import steps
from tests.fleet.conftest import SHARDS, FleetStack
from tests.fleet.harness import Fleet, LeaseTable, wait_until
from tests.fleet.traffic import Traffic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_a_two_workers_balance_four_shards_and_a_third_takes_its_share(
    fleet: Fleet, traffic: Traffic, leases: LeaseTable, exactly_once: Callable[..., Any],
    measure: Callable[[str, object], None],
) -> None:
    started = time.monotonic()
    fleet.ensure(["w1", "w2"])

    def two_each() -> bool:
        return leases.counts() == {"w1": 2, "w2": 2}

    wait_until(two_each, timeout=steps.BALANCE_TIMEOUT, interval=2.0, describe=steps.describe(leases, fleet))
    measure("a: 2 workers from start to 2/2 leases", f"{time.monotonic() - started:.0f}s")

    joined = time.monotonic()
    fleet.start("w3")

    def third_has_share() -> bool:
        counts = leases.counts()
        return counts.get("w3", 0) >= 1 and sum(counts.get(w, 0) for w in ("w1", "w2", "w3")) == SHARDS

    wait_until(third_has_share, timeout=steps.BALANCE_TIMEOUT, interval=2.0, describe=steps.describe(leases, fleet))
    measure("a: third worker from start to >=1 lease", f"{time.monotonic() - joined:.0f}s ({leases.counts()})")
    steps.assert_exactly_once(exactly_once, measure, "a")


def test_workers_command_shows_owners_checkpoints_and_lag(
    fleet: Fleet, fleet_stack: FleetStack, traffic: Traffic, leases: LeaseTable,
    measure: Callable[[str, object], None],
) -> None:
    workers = fleet.running() or ["w1", "w2", "w3"]
    steps.settled(fleet, leases, workers)
    settled_ms = int(time.time() * 1000)

    def every_open_shard_processed_since() -> bool:
        progress = read_progress(fleet_stack.redis)
        return all(shard in progress and progress[shard].processed_at_ms > settled_ms
                   for shard in leases.open_owners())

    wait_until(every_open_shard_processed_since, timeout=steps.FAILOVER_TIMEOUT, interval=0.5,
               describe=lambda: str(read_progress(fleet_stack.redis)))

    answer = steps.workers_command(fleet_stack, "--json")
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

    table = steps.workers_command(fleet_stack)
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
    victim, held = steps.victim(fleet, leases, workers)
    processor_log, fleet_log = fleet.workers[victim].processor_log, fleet.workers[victim].log
    already = processor_log.stat().st_size  # rebalancing hands leases over the same way: only the stop counts
    stopped = time.monotonic()
    code = fleet.stop(victim)
    exit_seconds = time.monotonic() - stopped
    survivors = [w for w in workers if w != victim]
    wait_until(lambda: steps.all_owned_by(leases, survivors), timeout=steps.FAILOVER_TIMEOUT, interval=1.0,
               describe=steps.describe(leases, fleet))
    measure("b: SIGTERM", f"{victim} held {held}, exited with {code} after {exit_seconds:.0f}s, "
            f"leases with the others {time.monotonic() - stopped:.0f}s after the signal")
    assert code == 0, code  # a stop that was asked for is a clean exit
    assert "Process shutdown is complete." in fleet_log.read_text(errors="replace")
    with processor_log.open("rb") as handle:
        handle.seek(already)
        log = handle.read().decode(errors="replace")
    for shard in held:
        assert f"shard {shard}: shutdown requested, final checkpoint" in log, f"no final checkpoint of {shard}"
    steps.assert_exactly_once(exactly_once, measure, "b")


def test_c_sigkill_mid_batch_redelivers_the_unfinished_batch_to_another_worker(
    fleet: Fleet, fleet_stack: FleetStack, traffic: Traffic, leases: LeaseTable, exactly_once: Callable[..., Any],
    measure: Callable[[str, object], None],
) -> None:
    workers = ["w1", "w2", "w3"]
    victim, held = steps.victim(fleet, leases, workers)
    in_flight = steps.stop_mid_batch(fleet_stack, leases, fleet.workers[victim], held)
    unfinished = steps.times_processed(fleet_stack, in_flight.shard, in_flight.checkpoint, in_flight.processed)
    assert unfinished, in_flight  # stored (in the journal), not checkpointed
    killed = time.monotonic()
    fleet.kill(victim)
    survivors = [w for w in workers if w != victim]
    wait_until(lambda: steps.all_owned_by(leases, survivors), timeout=steps.FAILOVER_TIMEOUT, interval=1.0,
               describe=steps.describe(leases, fleet))
    taken = time.monotonic() - killed
    steps.assert_exactly_once(exactly_once, measure, "c")

    again = steps.times_processed(fleet_stack, in_flight.shard, in_flight.checkpoint, in_flight.processed)
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
    victim, held = steps.victim(fleet, leases, workers)
    zombie = fleet.workers[victim]
    log_at = zombie.processor_log.stat().st_size
    paused = time.monotonic()
    in_flight = steps.stop_mid_batch(fleet_stack, leases, zombie, held)
    try:
        survivors = [w for w in workers if w != victim]
        wait_until(lambda: steps.all_owned_by(leases, survivors), timeout=steps.FAILOVER_TIMEOUT, interval=1.0,
                   describe=steps.describe(leases, fleet))
        taken = time.monotonic() - paused
        # The new owner processes the zombie's unfinished batch again and checkpoints past it.
        wait_until(lambda: steps.past(steps.checkpoint_of(leases, in_flight.shard), in_flight.processed),
                   timeout=steps.FAILOVER_TIMEOUT, interval=1.0,
                   describe=lambda: f"{in_flight}: checkpoint {steps.checkpoint_of(leases, in_flight.shard)}")
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
                         timeout=steps.FAILOVER_TIMEOUT, interval=0.5, describe=lambda: zombie_log()[-2000:])
    measure("e: SIGSTOP", f"{victim} held {held}, stopped with {in_flight} (not checkpointed); leases with the "
            f"others {taken:.0f}s after the pause; paused {resumed - paused:.0f}s; after resume its checkpoint "
            f"was refused {time.monotonic() - resumed:.1f}s later: {refused[0].split(': ', 1)[-1]}")
    assert steps.past(steps.checkpoint_of(leases, in_flight.shard), in_flight.processed)
    steps.assert_exactly_once(exactly_once, measure, "e")
    twice = steps.times_processed(fleet_stack, in_flight.shard, in_flight.checkpoint, in_flight.processed)
    assert twice and all(n >= 2 for n in twice.values()), twice  # the zombie's and the new owner's: absorbed
    measure("e: records of the zombie's unfinished batch processed again by the new owner", len(twice))
