"""Composition root of the record-processor process: settings in, a ready batch handler out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from kcl_app.dynamo_ledger import DynamoCounterLedger
from kcl_app.dynamo_store import DynamoDeadLetterStore, DynamoEventStore, WritePool
from kcl_app.handler import BatchOutcome, Stores, StreamRecord, give_up, process_batch
from kcl_app.progress import RedisProgress
from kcl_app.redis_mirror import Rebuilder, RedisMirror
from wikitide import retry
from wikitide.aws import make_adapter_client, make_client
from wikitide.redis_client import connect
from wikitide.settings import Settings
from wikitide.stack import StackResources, read_outputs


@dataclass(frozen=True)
class BatchHandler:
    """Processes one shard's batch (`kcl_app.handler.process_batch`), or gives up one record unprocessed."""

    stores: Stores

    def __call__(self, records: Sequence[StreamRecord]) -> BatchOutcome:
        return process_batch(records, self.stores)

    def give_up(self, record: StreamRecord, detail: str) -> BatchOutcome:
        return give_up(record, detail, self.stores)


def build_stores(
    dynamodb: Any,
    redis_client: redis.Redis,
    resources: StackResources,
    *,
    fast_retries: bool = False,
    scan_client: Any = None,
) -> tuple[Stores, Rebuilder]:
    """The real adapters; an empty Redis (no `wt:ready`) starts a background rebuild from the ledger and the
    claims, which scans with `scan_client` (default `dynamodb`; a longer read timeout suits a background scan)."""
    pool = WritePool()
    counter_ledger = DynamoCounterLedger(dynamodb, resources.counters_table, pool=pool, fast_retries=fast_retries)
    scanner = DynamoCounterLedger(
        scan_client or dynamodb, resources.counters_table, pool=pool, fast_retries=fast_retries
    )
    claims = DynamoEventStore(scan_client or dynamodb, resources.events_table, pool=pool, fast_retries=fast_retries)
    rebuilders: list[Rebuilder] = []
    mirror = RedisMirror(redis_client, on_empty=lambda: rebuilders[0].start_in_background(), fast_retries=fast_retries)
    rebuilders.append(Rebuilder(redis_client, mirror, scanner.scan, claims.scan_page_edits))
    stores = Stores(
        events=DynamoEventStore(
            dynamodb, resources.events_table, pool=pool, fast_retries=fast_retries
        ),
        dead_letters=DynamoDeadLetterStore(dynamodb, resources.dead_letter_table, fast_retries=fast_retries),
        ledger=counter_ledger,
        mirror=mirror,
    )
    return stores, rebuilders[0]


def bootstrap(settings: Settings) -> BatchHandler:
    resources = read_outputs(make_client(settings, "cloudformation"), settings.stack_name)
    # One attempt per command: RedisMirror retries under retry.PROCESSOR_REDIS.
    redis_client = connect(settings)
    stores, _ = build_stores(
        make_adapter_client(settings, "dynamodb"), redis_client, resources, fast_retries=settings.fast_retries,
        scan_client=make_adapter_client(settings, "dynamodb", read_timeout=retry.REBUILD_SCAN_READ_TIMEOUT),
    )
    return BatchHandler(stores)


def progress_reporter(settings: Settings) -> RedisProgress:
    """Per-shard progress (and, when enabled, the processing journal) in the counters' Redis."""
    # Progress is best effort (logged, never raised, never retried): a hung Redis costs a batch one short timeout.
    client = connect(settings, socket_timeout=1.0, connect_timeout=1.0)
    return RedisProgress(client, journal=settings.kcl_journal)
