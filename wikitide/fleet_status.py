"""What `wikitide workers` shows: per shard its parents, open/closed, lease owner, checkpoint and lag. Pure.

Lag comes from the records' arrival times, as the processors report them (`wikitide.shard_progress`):
- `lag`: for the last record processed, from its arrival in Kinesis (ApproximateArrivalTimestamp) to its
  processing; grows when a processor falls behind a busy shard;
- `behind`: the daemon's millisBehindLatest at that batch (0 when the processor had read up to the tip);
- `last batch`: how long ago the last batch was processed; an open shard whose processing stopped shows it
  here (a quiet shard too: no records, no batches).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ShardInfo:
    shard_id: str
    parents: tuple[str, ...]
    is_open: bool


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    shard_id: str
    owner: str | None
    checkpoint: str | None


class Progress(Protocol):
    """A shard's last processed batch, as `wikitide.shard_progress.ShardProgress` holds it."""

    @property
    def arrival_ms(self) -> int: ...

    @property
    def processed_at_ms(self) -> int: ...

    @property
    def millis_behind_latest(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class ShardRow:
    shard_id: str
    parents: tuple[str, ...]
    is_open: bool
    owner: str | None
    checkpoint: str | None
    has_lease: bool
    lag_ms: int | None = None
    behind_ms: int | None = None
    last_batch_age_ms: int | None = None


def build_rows(
    shards: Sequence[ShardInfo], leases: Sequence[LeaseInfo], progress: Mapping[str, Progress], now_ms: int
) -> list[ShardRow]:
    """One row per shard of the stream, and one per lease whose shard the stream no longer lists; sorted by
    shard id (which follows creation order), so parents come before their children."""
    by_lease = {lease.shard_id: lease for lease in leases}
    known = {shard.shard_id: shard for shard in shards}
    for shard_id in by_lease.keys() - known.keys():
        known[shard_id] = ShardInfo(shard_id, (), by_lease[shard_id].checkpoint != "SHARD_END")
    rows = []
    for shard_id in sorted(known):
        shard, lease, done = known[shard_id], by_lease.get(shard_id), progress.get(shard_id)
        rows.append(ShardRow(
            shard_id=shard_id,
            parents=shard.parents,
            is_open=shard.is_open,
            owner=lease.owner if lease else None,
            checkpoint=lease.checkpoint if lease else None,
            has_lease=lease is not None,
            lag_ms=done.processed_at_ms - done.arrival_ms if done else None,
            behind_ms=done.millis_behind_latest if done else None,
            last_batch_age_ms=max(0, now_ms - done.processed_at_ms) if done else None,
        ))
    return rows


def _seconds(ms: int | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.1f}s"


def _short(sequence: str | None, width: int = 14) -> str:
    if sequence is None:
        return "-"
    return sequence if len(sequence) <= width else "…" + sequence[-(width - 1):]


def _short_shard(shard_id: str) -> str:
    return shard_id.removeprefix("shardId-")


def format_table(rows: Sequence[ShardRow]) -> str:
    header = ("SHARD", "PARENTS", "STATE", "OWNER", "CHECKPOINT", "LAG", "BEHIND", "LAST BATCH")
    lines = [header]
    for row in rows:
        lines.append((
            _short_shard(row.shard_id),
            ",".join(_short_shard(p) for p in row.parents) or "-",
            "open" if row.is_open else "closed",
            row.owner or ("-" if row.has_lease else "(no lease)"),
            _short(row.checkpoint),
            _seconds(row.lag_ms),
            _seconds(row.behind_ms),
            "-" if row.last_batch_age_ms is None else f"{_seconds(row.last_batch_age_ms)} ago",
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def summary(rows: Sequence[ShardRow]) -> str:
    owners: dict[str, int] = {}
    for row in rows:
        if row.is_open and row.owner:
            owners[row.owner] = owners.get(row.owner, 0) + 1
    open_count = sum(1 for row in rows if row.is_open)
    unowned = sum(1 for row in rows if row.is_open and not row.owner)
    spread = ", ".join(f"{owner}: {n}" for owner, n in sorted(owners.items())) or "none"
    return f"{open_count} open shards, {len(rows) - open_count} closed; leases of open shards: {spread}" + (
        f"; {unowned} open shard(s) without an owner" if unowned else ""
    )


def to_json(rows: Sequence[ShardRow]) -> str:
    return json.dumps([asdict(row) for row in rows], indent=2)
