"""Has the fleet processed everything that was sent? Read from the pipeline's own progress, not from a timer.

A shard is caught up when its lease's checkpoint is at or past the last record the source put on it, or at
SHARD_END (the KCL checkpoints SHARD_END only after the shard's last record was processed). A closed shard whose
lease the KCL has already cleaned up (it does so once the children have started) is done as well. The processor
checkpoints only after a batch is in every store, so once every shard is caught up the stores are final: a key
still missing then was lost, not late, and `explain_lost` says where it was and what the pipeline did with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tests.fleet.traffic import Sent
from wikitide.fleet_status import LeaseInfo

SHARD_END = "SHARD_END"


@dataclass(frozen=True)
class ShardState:
    shard_id: str
    last_sent: int  # highest sequence number the source put on this shard
    checkpoint: str | None  # the lease's checkpoint; None: no lease (yet, or cleaned up)
    closed: bool
    ending_sequence: int | None

    @property
    def caught_up(self) -> bool:
        if self.checkpoint == SHARD_END:
            return True
        if self.checkpoint is None:
            return self.closed  # a closed shard's lease is deleted only after it reached SHARD_END
        return self.checkpoint.isdigit() and int(self.checkpoint) >= self.last_sent

    def __str__(self) -> str:
        ending = f", ends at {self.ending_sequence}" if self.ending_sequence is not None else ", open"
        return f"{self.shard_id}: last sent {self.last_sent}, checkpoint {self.checkpoint}{ending}"


def kinesis_shards(kinesis: Any, stream: str) -> dict[str, dict[str, Any]]:
    shards: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"StreamName": stream}
    while True:
        page = kinesis.list_shards(**kwargs)
        shards.update((s["ShardId"], s) for s in page["Shards"])
        if not page.get("NextToken"):
            return shards
        kwargs = {"NextToken": page["NextToken"]}


def shard_states(sent: Iterable[Sent], leases: Sequence[LeaseInfo], shards: Mapping[str, Mapping[str, Any]]
                 ) -> list[ShardState]:
    last: dict[str, int] = {}
    for record in sent:
        if record.shard_id:  # records another source put have no known shard
            last[record.shard_id] = max(last.get(record.shard_id, 0), int(record.sequence))
    checkpoints = {lease.shard_id: lease.checkpoint for lease in leases}
    states = []
    for shard_id, last_sent in sorted(last.items()):
        ending = shards.get(shard_id, {}).get("SequenceNumberRange", {}).get("EndingSequenceNumber")
        states.append(ShardState(
            shard_id=shard_id, last_sent=last_sent, checkpoint=checkpoints.get(shard_id),
            closed=ending is not None, ending_sequence=int(ending) if ending is not None else None,
        ))
    return states


def behind(states: Iterable[ShardState]) -> list[ShardState]:
    return [state for state in states if not state.caught_up]


def explain_lost(lost_keys: Iterable[str], sent: Sequence[Sent], journal: Sequence[tuple[str, str]],
                 states: Sequence[ShardState], limit: int = 10) -> str:
    """Where each lost key's records went (shard, sequence), whether a processor ever got them (the journal),
    and where that shard's checkpoint and end are: a checkpoint past a record the journal never saw is a loss
    the KCL boundary let through; a record after the shard's end is one Kinesis accepted into a closed shard."""
    by_key: dict[str, list[Sent]] = {}
    for record in sent:
        by_key.setdefault(record.dedup_key, []).append(record)
    processed = set(journal)
    by_shard = {state.shard_id: state for state in states}
    lost = list(lost_keys)
    per_shard: dict[str, list[int]] = {}
    lines = []
    for key in lost:
        for record in by_key.get(key, []):
            per_shard.setdefault(record.shard_id, []).append(int(record.sequence))
            if len(lines) < limit:
                state = by_shard.get(record.shard_id)
                after_end = state is not None and state.ending_sequence is not None and (
                    int(record.sequence) > state.ending_sequence)
                lines.append(
                    f"{key}: {record.shard_id} {record.sequence} "
                    f"{'in' if (record.shard_id, record.sequence) in processed else 'NOT in'} the journal"
                    f"{', after the shard end' if after_end else ''}; shard {state}"
                )
    summary = "; ".join(
        f"{shard}: {len(seqs)} records, sequences {min(seqs)}..{max(seqs)}" for shard, seqs in sorted(per_shard.items())
    )
    return f"{len(lost)} keys lost ({summary})\n" + "\n".join(lines)
