"""Per-shard progress of the record processors, as they write it to Redis (`kcl_app.progress`) and as
`wikitide workers`, the API's control status and the fleet tests read it: the layout, the record and the readers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SHARD_PREFIX = "wt:kcl:shard:"
JOURNAL = "wt:kcl:journal"
JOURNAL_LIMIT = 1_000_000  # newest entries kept: a bound for a journal left on by mistake
PROGRESS_TTL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class ShardProgress:
    """The last processed record of a shard; `processed_at_ms` is the processor's wall clock."""

    shard_id: str
    sequence: str
    arrival_ms: int
    processed_at_ms: int
    millis_behind_latest: int | None = None

    def as_fields(self) -> dict[str, str]:
        fields = {
            "sequence": self.sequence,
            "arrival_ms": str(self.arrival_ms),
            "processed_at_ms": str(self.processed_at_ms),
        }
        if self.millis_behind_latest is not None:
            fields["millis_behind_latest"] = str(self.millis_behind_latest)
        return fields

    @classmethod
    def from_fields(cls, shard_id: str, fields: Mapping[str, str]) -> ShardProgress:
        behind = fields.get("millis_behind_latest")
        return cls(
            shard_id=shard_id,
            sequence=fields["sequence"],
            arrival_ms=int(fields["arrival_ms"]),
            processed_at_ms=int(fields["processed_at_ms"]),
            millis_behind_latest=int(behind) if behind not in (None, "") else None,
        )


def shard_key(shard_id: str) -> str:
    return SHARD_PREFIX + shard_id


def journal_entry(shard_id: str, sequence: str, sub_sequence: int | None = None) -> str:
    """A processed record: its shard and sequence number, and `/<sub-sequence>` for a user record of an aggregate
    past its first (the first's entry is the aggregate's sequence number alone, as a plain record's)."""
    return f"{shard_id}\t{sequence}/{sub_sequence}" if sub_sequence else f"{shard_id}\t{sequence}"


def read_progress(client: Any) -> dict[str, ShardProgress]:
    """Every shard's progress hash, by shard id (a client with `decode_responses=True`)."""
    found: dict[str, ShardProgress] = {}
    for key in client.scan_iter(match=SHARD_PREFIX + "*", count=500):
        fields = client.hgetall(key)
        if "sequence" in fields:
            shard_id = key[len(SHARD_PREFIX):]
            found[shard_id] = ShardProgress.from_fields(shard_id, fields)
    return found


def read_journal(client: Any) -> list[tuple[str, str]]:
    """The processing journal in order, as (shard id, sequence number) pairs."""
    entries = client.lrange(JOURNAL, 0, -1)
    return [tuple(entry.split("\t", 1)) for entry in entries]  # type: ignore[misc]
