"""Per-shard progress of the record processors, for `wikitide workers` (lag) and the fleet tests (order).

After a batch is stored, and before it is checkpointed, the processor reports the batch here: the shard's
hash `wt:kcl:shard:{shard_id}` then holds the last processed record's sequence number and arrival time
(ApproximateArrivalTimestamp), when it was processed, and the daemon's millisBehindLatest. Optionally
(`WIKITIDE_KCL_JOURNAL=1`) every processed record is also appended, as `shard<TAB>sequence`, to one
Redis list: Redis serialises the appends, so the list is the fleet's processing order across workers.
A redelivered batch is appended again; readers take a record's first position.

Progress is observability: a failure to write it is logged and never fails or holds back the batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis

logger = logging.getLogger(__name__)

SHARD_PREFIX = "wt:kcl:shard:"
JOURNAL = "wt:kcl:journal"
JOURNAL_LIMIT = 1_000_000  # newest entries kept: a bound for a journal left on by mistake
PROGRESS_TTL_SECONDS = 7 * 24 * 3600


class ArrivedRecord(Protocol):
    """What progress needs of an amazon_kclpy record."""

    @property
    def sequence_number(self) -> str: ...

    @property
    def timestamp_millis(self) -> int: ...


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


def journal_entry(shard_id: str, sequence: str) -> str:
    return f"{shard_id}\t{sequence}"


class RedisProgress:
    """Writes progress with one pipelined round trip per batch; errors are logged, never raised."""

    def __init__(self, client: Any, *, journal: bool = False, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._journal = journal
        self._clock = clock

    def batch_done(self, shard_id: str, records: Sequence[ArrivedRecord], millis_behind_latest: int | None) -> None:
        if not records:
            return
        last = records[-1]
        progress = ShardProgress(
            shard_id=shard_id,
            sequence=last.sequence_number,
            arrival_ms=last.timestamp_millis,
            processed_at_ms=int(self._clock() * 1000),
            millis_behind_latest=millis_behind_latest,
        )
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.hset(shard_key(shard_id), mapping=progress.as_fields())
            pipe.hincrby(shard_key(shard_id), "records", len(records))
            pipe.expire(shard_key(shard_id), PROGRESS_TTL_SECONDS)
            if self._journal:
                pipe.rpush(JOURNAL, *(journal_entry(shard_id, r.sequence_number) for r in records))
                pipe.ltrim(JOURNAL, -JOURNAL_LIMIT, -1)
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            logger.warning("shard %s: progress not recorded: %s", shard_id, exc)


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
