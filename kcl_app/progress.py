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
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import redis

from wikitide.shard_progress import (
    JOURNAL,
    JOURNAL_LIMIT,
    PROGRESS_TTL_SECONDS,
    ShardProgress,
    journal_entry,
    read_journal,
    read_progress,
    shard_key,
)

# The readers live in the shared package (the API reads them too); named here for the processor's tests.
__all__ = ["RedisProgress", "ShardProgress", "read_journal", "read_progress", "shard_key"]

logger = logging.getLogger(__name__)

class ArrivedRecord(Protocol):
    """What progress needs of an amazon_kclpy record."""

    @property
    def sequence_number(self) -> str: ...

    @property
    def sub_sequence_number(self) -> int | None: ...

    @property
    def timestamp_millis(self) -> int: ...


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
                pipe.rpush(JOURNAL, *(journal_entry(shard_id, r.sequence_number, r.sub_sequence_number)
                                      for r in records))
                pipe.ltrim(JOURNAL, -JOURNAL_LIMIT, -1)
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            logger.warning("shard %s: progress not recorded: %s", shard_id, exc)


