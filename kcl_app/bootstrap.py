"""Composition root of the record-processor process: settings in, a ready batch handler out."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import redis

from kcl_app.dynamo_store import DynamoEventStore
from kcl_app.handler import BatchOutcome, process_batch
from kcl_app.progress import RedisProgress
from kcl_app.redis_counters import RedisCounterStore
from wikitide.aws import make_client
from wikitide.settings import Settings
from wikitide.stack import read_outputs

BatchHandler = Callable[[Sequence[bytes]], BatchOutcome]


def bootstrap(settings: Settings) -> BatchHandler:
    resources = read_outputs(make_client(settings, "cloudformation"), settings.stack_name)
    events = DynamoEventStore(
        make_client(settings, "dynamodb"), resources.events_table, fast_retries=settings.fast_retries
    )
    redis_client = redis.Redis.from_url(settings.require_redis_url(), socket_timeout=5, socket_connect_timeout=3)
    counters = RedisCounterStore(redis_client, fast_retries=settings.fast_retries)

    def handle(payloads: Sequence[bytes]) -> BatchOutcome:
        return process_batch(payloads, events, counters)

    return handle


def progress_reporter(settings: Settings) -> RedisProgress:
    """Per-shard progress (and, when enabled, the processing journal) in the counters' Redis."""
    client = redis.Redis.from_url(settings.require_redis_url(), socket_timeout=2, socket_connect_timeout=2)
    return RedisProgress(client, journal=settings.kcl_journal)
