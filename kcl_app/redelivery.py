"""Batches that kill their processor: counted across restarts, then worked through in ever smaller runs.

The processor sees most failures itself (`kcl_app/handler.py` isolates a record that a store refuses or that
raises). A failure that kills the process (the OOM killer, a crash in a C extension, a hang ended by a signal)
only shows as the same batch delivered again: the daemon is restarted and resumes from the last checkpoint.
`RedisDeliveryLog` remembers, per shard, the first sequence number of the batch in flight and how many
deliveries starting there began without ending; it survives a restart of the processor, holds one small field
per shard, and expires.

`plan` turns that count into what to do. Below `DEATHS_BEFORE_SPLIT` deaths: the whole batch, as usual (a
SIGKILL of a worker or a restart during an outage is not a reason to split). From then on, each further death
halves the run processed before a checkpoint, so the checkpoint moves past every run that completes; when a run
of one record killed the process and the batch starts with that record again, the record is given up unprocessed
(a dead letter `processing_error`). A transient failure that the processor reports (exit 75 on
`DependencyUnavailable`) ends the delivery and is not counted: an outage never gives up a good record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import redis

logger = logging.getLogger(__name__)

DEATHS_BEFORE_SPLIT = 3
DELIVERIES_KEY = "wt:kcl:deliveries"
DELIVERIES_TTL_SECONDS = 86_400


@dataclass(frozen=True, slots=True)
class Delivery:
    """Earlier deliveries that began at the current level and died; whether the last one began at this record."""

    deaths: int = 0
    same_start: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    give_up_first: bool
    run: int  # records processed before each checkpoint

    def is_whole(self, size: int) -> bool:
        return not self.give_up_first and self.run >= size


def plan(size: int, delivery: Delivery) -> Plan:
    level = delivery.deaths - DEATHS_BEFORE_SPLIT + 1
    if level <= 0:
        return Plan(False, size)
    previous_run = max(1, size >> (level - 1))
    return Plan(delivery.same_start and previous_run == 1, max(1, size >> level))


class DeliveryLog(Protocol):
    def begin(self, shard: str, first_sequence: int) -> Delivery:
        """Record that a delivery starting at `first_sequence` began; return the deaths before it. Never raises."""

    def end(self, shard: str) -> None:
        """The delivery ended (done, or a failure the processor reported). Never raises."""


class RedisDeliveryLog:
    """The counts in one Redis hash, field `<shard>`, value `<first sequence>:<deliveries begun, not ended>`.

    One processor owns a shard at a time, so a plain read and write suffices; a zombie's write at worst shifts a
    count by one. When Redis cannot be reached the delivery counts as a first one (an outage must not split).
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    def begin(self, shard: str, first_sequence: int) -> Delivery:
        try:
            stored = self._client.hget(DELIVERIES_KEY, shard)
            delivery, begun = next_delivery(stored, first_sequence)
            pipe = self._client.pipeline(transaction=False)
            pipe.hset(DELIVERIES_KEY, shard, f"{first_sequence}:{begun}")
            pipe.expire(DELIVERIES_KEY, DELIVERIES_TTL_SECONDS)
            pipe.execute()
        except (redis.RedisError, OSError, ValueError) as exc:
            logger.warning("shard %s: delivery not counted: %s", shard, exc)
            return Delivery()
        return delivery

    def end(self, shard: str) -> None:
        try:
            self._client.hdel(DELIVERIES_KEY, shard)
        except (redis.RedisError, OSError) as exc:
            logger.warning("shard %s: end of delivery not recorded: %s", shard, exc)


def next_delivery(stored: bytes | str | None, first_sequence: int) -> tuple[Delivery, int]:
    """The delivery now beginning, and the count to store with it."""
    if stored is None:
        return Delivery(), 1
    text = stored.decode() if isinstance(stored, bytes) else stored
    start, _, begun_text = text.partition(":")
    begun = int(begun_text)
    if int(start) == first_sequence:
        return Delivery(begun, True), begun + 1
    if begun - 1 >= DEATHS_BEFORE_SPLIT:
        # The last delivery was splitting, got past some runs and died further on: keep its run length.
        return Delivery(begun - 1, False), begun
    return Delivery(), 1
