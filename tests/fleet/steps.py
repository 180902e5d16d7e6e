"""What the fleet scenarios share: bringing the fleet to a set of workers, choosing a victim that is not KCL 3's
leader, catching a worker between a stored batch and its checkpoint, and reading shards and the processing
journal.

KCL 3 assigns leases from an elected leader that holds a 2-minute DynamoDB lock (not configurable in 3.1.3):
the scenarios that take a worker away choose one that is not the leader, so what they measure is the lease
failover (failoverTimeMillis + the assignment interval), not the leader lock's expiry.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kcl_app.progress import read_journal, shard_key
from tests.fleet.conftest import FleetStack
from tests.fleet.harness import SHARD_END, Fleet, LeaseTable, Worker, wait_until

BALANCE_TIMEOUT = 360.0  # KCL 3 balances by measured load, every few assignment rounds
FAILOVER_TIMEOUT = 120.0  # failoverTimeMillis 10 s + assignment every 5 s, with room for a loaded machine
# New child shards: leases created by the shard sync, then assigned, parents finished, consumers started; at a
# load average of 20-36 the 4->2->4 steps took over 120 s. A bound on a condition, not a wait.
CHILDREN_TIMEOUT = 300.0
IN_FLIGHT_SETTLE = 2.0  # seconds for a request a stopped worker had already sent to reach moto


def all_owned_by(leases: LeaseTable, workers: list[str]) -> dict[str, str | None] | None:
    owners = leases.open_owners()
    if owners and all(owner in workers for owner in owners.values()):
        return owners
    return None


def describe(leases: LeaseTable, fleet: Fleet) -> Callable[[], str]:
    return lambda: f"open leases {leases.open_owners()}, leader {leases.leader()}, running {fleet.running()}"


def settled(fleet: Fleet, leases: LeaseTable, workers: list[str], timeout: float = BALANCE_TIMEOUT) -> None:
    """These workers running, and every open lease owned by one of them."""
    fleet.ensure(workers)
    wait_until(lambda: all_owned_by(leases, workers), timeout=timeout, interval=2.0,
               describe=describe(leases, fleet))


def victim(fleet: Fleet, leases: LeaseTable, workers: list[str]) -> tuple[str, list[str]]:
    """With these workers settled, one that is not the leader and holds at least one lease, with its shards."""
    settled(fleet, leases, workers)

    def candidate() -> tuple[str, list[str]] | None:
        leader = leases.leader()
        owners = leases.open_owners()
        for worker in workers:
            held = sorted(shard for shard, owner in owners.items() if owner == worker)
            # KCL 3's leader assigns a lease by writing its owner; the worker takes it up a few seconds later. A
            # worker named in the table whose processors have not started on its shards holds nothing yet (a CI run
            # stopped such a worker and waited for a refusal from it while another worker's batch was in flight).
            if (leader is not None and worker != leader and held
                    and all(processing(fleet.workers[worker], shard) for shard in held)):
                return worker, held
        return None

    return wait_until(candidate, timeout=BALANCE_TIMEOUT, interval=2.0, describe=describe(leases, fleet))


def assert_exactly_once(exactly_once: Callable[..., Any], measure: Callable[[str, object], None],
                         label: str) -> None:
    report = exactly_once()
    assert report.ok, str(report)
    measure(f"{label}: checker", str(report))


def workers_command(fleet_stack: FleetStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wikitide", "workers", *args], env={**os.environ, **fleet_stack.env},
        capture_output=True, text=True, timeout=180, check=False,
    )


def _shard_lines(worker: Worker, shard: str) -> list[str]:
    if not worker.processor_log.exists():
        return []
    marker = f"shard {shard}: "
    return [line for line in worker.processor_log.read_text(errors="replace").splitlines() if marker in line]


def processing(worker: Worker, shard: str) -> bool:
    """The worker's processor log shows a record processor for `shard` that started and has not stopped since."""
    lines = _shard_lines(worker, shard)
    started = max((i for i, line in enumerate(lines) if ": starting at " in line), default=None)
    stops = (": lease lost", ": ended,", ": shutdown requested", ": shutting down")
    return started is not None and not any(stop in line for line in lines[started:] for stop in stops)


def batches_logged(worker: Worker, shard: str) -> int:
    """How many batches of `shard` the worker's processors logged as stored (the line precedes the progress)."""
    return sum(1 for line in _shard_lines(worker, shard) if " records, " in line)


def just_after_a_batch(fleet_stack: FleetStack, shards: list[str], timeout: float = 90.0) -> None:
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


def lease_checkpoints(leases: LeaseTable) -> dict[str, str | None]:
    return {lease.shard_id: lease.checkpoint for lease in leases.leases()}


def stop_mid_batch(fleet_stack: FleetStack, leases: LeaseTable, worker: Worker, shards: list[str],
                    timeout: float = 180.0) -> InFlight:
    """SIGSTOP the worker's whole process group right after one of its shards reported a stored batch, and
    keep it stopped only when the lease table shows that batch not yet checkpointed; otherwise SIGCONT and try
    again with the next batch (bounded). The stopped worker then holds records that a processor has stored and
    that its shard's checkpoint does not cover: whoever takes the shard over must process them again."""
    deadline = time.monotonic() + timeout
    attempts = 0
    while time.monotonic() < deadline:
        logged = {shard: batches_logged(worker, shard) for shard in shards}
        just_after_a_batch(fleet_stack, shards)
        worker.signal_group(signal.SIGSTOP)
        attempts += 1
        # A checkpoint the worker sent just before the stop can still land in moto after a first read of the
        # lease table (scenario f once saw its "unfinished" batch checkpointed that way): read again after
        # IN_FLIGHT_SETTLE and keep the stop only if both reads show the same checkpoint behind the batch.
        first = lease_checkpoints(leases)
        time.sleep(IN_FLIGHT_SETTLE)
        latest = lease_checkpoints(leases)
        for shard in shards:
            processed, checkpoint = fleet_stack.redis.hget(shard_key(shard), "sequence"), latest.get(shard)
            # The batch must be this worker's: its log shows a batch of the shard that it had not logged before.
            if (processed and checkpoint and checkpoint == first.get(shard) and checkpoint.isdigit()
                    and int(processed) > int(checkpoint) and batches_logged(worker, shard) > logged[shard]):
                return InFlight(shard, int(checkpoint), int(processed), attempts)
        worker.signal_group(signal.SIGCONT)
    raise AssertionError(f"no batch of {shards} caught between store and checkpoint in {attempts} tries")


def times_processed(fleet_stack: FleetStack, shard: str, after: int, up_to: int) -> Counter[str]:
    """How often the journal shows each record of `shard` with `after` < sequence <= `up_to` processed (each user
    record of an aggregate on its own)."""
    return Counter(
        sequence for journal_shard, sequence in read_journal(fleet_stack.redis)
        if journal_shard == shard and after < int(sequence.partition("/")[0]) <= up_to
    )


def checkpoint_of(leases: LeaseTable, shard: str) -> str | None:
    return next((lease.checkpoint for lease in leases.leases() if lease.shard_id == shard), None)


def past(checkpoint: str | None, sequence: int) -> bool:
    return checkpoint == SHARD_END or bool(checkpoint and checkpoint.isdigit() and int(checkpoint) >= sequence)


def wait_active(fleet_stack: FleetStack) -> None:
    def active() -> bool:
        summary = fleet_stack.kinesis.describe_stream_summary(StreamName=fleet_stack.stream)
        return bool(summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE")

    wait_until(active, timeout=60, interval=0.5)


def open_shards(fleet_stack: FleetStack) -> list[dict[str, Any]]:
    shards = fleet_stack.kinesis.list_shards(StreamName=fleet_stack.stream)["Shards"]
    return sorted(
        (s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]),
        key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]),
    )


def parents(fleet_stack: FleetStack) -> dict[str, list[str]]:
    shards = fleet_stack.kinesis.list_shards(StreamName=fleet_stack.stream)["Shards"]
    return {
        s["ShardId"]: [p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p] for s in shards
    }


def children_started(leases: LeaseTable, fleet_stack: FleetStack, workers: list[str]) -> bool:
    """Every open shard has a lease owned by a running worker, and has made progress (processed a batch)."""
    owners = leases.open_owners()
    open_ids = {s["ShardId"] for s in open_shards(fleet_stack)}
    progressed = {key.rsplit(":", 1)[-1] for key in fleet_stack.redis.scan_iter(match="wt:kcl:shard:*")}
    return open_ids <= set(owners) and all(owners[s] in workers for s in open_ids) and open_ids <= progressed
