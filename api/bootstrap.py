"""The real adapters, built from settings: Redis from `REDIS_URL`, AWS names from the stack's outputs.

Each piece is built once, when first asked for, so an app given fakes for some ports never touches the
services behind them. Building calls no service except CloudFormation, for the stack's outputs.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import redis

from api.answer_cache import DataVersion
from api.control_plane import ControlPlane
from api.dynamo_edits import DynamoEdits
from api.dynamo_stats import DynamoStats
from api.fallback_stats import FallbackStats
from api.fanout import BLOCK_MS
from api.feed_log import RedisFeedLog
from api.health import dynamodb_check, kinesis_check, redis_check
from api.ports import HealthChecks
from api.redis_stats import RedisStats, is_ready
from wikitide import keys
from wikitide.aws import make_adapter_client, make_client
from wikitide.metrics import NULL_METRICS, Metrics
from wikitide.producer_control import ProducerControl
from wikitide.redis_client import connect
from wikitide.settings import Settings
from wikitide.stack import StackResources, read_outputs

# A request that waits long helps nobody: the dashboard asks again in two seconds. A Redis that does not answer
# costs one REDIS_TIMEOUT_SECONDS, then FallbackStats reads DynamoDB for FallbackStats.COOLOFF_SECONDS without
# asking Redis again. The clients' own retries are the only ones here (no loop around them).
REDIS_TIMEOUT_SECONDS = 1.0
REDIS_RETRIES = 1  # a dropped connection only, never a timeout (wikitide.redis_client)
AWS_READ_ATTEMPTS = 2  # in all: botocore retries once
AWS_CONNECT_TIMEOUT_SECONDS = 1.0
# A top-pages fallback makes one index Query per minute with edits (up to 1,440 for 24 h, 8 at a time): 3 s per
# Query was missed on a busy machine's moto (a 503 in CI); 8 s, twice, stays under gunicorn's 30-s worker timeout.
AWS_READ_TIMEOUT_SECONDS = 8.0
HEALTH_TIMEOUT_SECONDS = 2.0


class Adapters:
    def __init__(self, settings: Settings, metrics: Metrics = NULL_METRICS) -> None:
        self._settings = settings
        self._metrics = metrics

    @cached_property
    def redis_client(self) -> redis.Redis:
        retries = 0 if self._settings.fast_retries else REDIS_RETRIES
        return connect(
            self._settings,
            retries=retries,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            connect_timeout=REDIS_TIMEOUT_SECONDS,
            decode_responses=True,
        )

    @cached_property
    def data_version(self) -> DataVersion:
        # Its own client, one attempt a poll: the next poll is the retry, 50 ms later.
        client = connect(self._settings, retries=0, socket_timeout=REDIS_TIMEOUT_SECONDS,
                         connect_timeout=REDIS_TIMEOUT_SECONDS, decode_responses=True)

        def read() -> object | None:
            try:
                return client.get(keys.DATA_VERSION)
            except (redis.RedisError, OSError):
                return None

        return DataVersion(read)

    @cached_property
    def feed(self) -> RedisFeedLog:
        # Its own connections: the fan-out's reader blocks in XREAD for up to BLOCK_MS, past REDIS_TIMEOUT_SECONDS.
        client = connect(
            self._settings, retries=0, socket_timeout=BLOCK_MS / 1000 + REDIS_TIMEOUT_SECONDS,
            connect_timeout=REDIS_TIMEOUT_SECONDS, decode_responses=True,
        )
        return RedisFeedLog(client)

    @cached_property
    def resources(self) -> StackResources:
        return read_outputs(make_client(self._settings, "cloudformation"), self._settings.stack_name)

    @cached_property
    def stats(self) -> FallbackStats:
        return FallbackStats(
            RedisStats(self.redis_client),
            lambda: DynamoStats(
                self._dynamodb, self.resources.counters_table, events_table=self.resources.events_table
            ),
            lambda: is_ready(self.redis_client),
            metrics=self._metrics,
        )

    @cached_property
    def _dynamodb(self) -> Any:
        return make_client(
            self._settings, "dynamodb", max_attempts=AWS_READ_ATTEMPTS, read_timeout=AWS_READ_TIMEOUT_SECONDS,
            connect_timeout=AWS_CONNECT_TIMEOUT_SECONDS,
        )

    @cached_property
    def edits(self) -> DynamoEdits:
        return DynamoEdits(self._dynamodb, self.resources.events_table)

    @cached_property
    def control_plane(self) -> ControlPlane:
        settings = self._settings
        return ControlPlane(
            kinesis=make_client(settings, "kinesis", max_attempts=AWS_READ_ATTEMPTS,
                                read_timeout=AWS_READ_TIMEOUT_SECONDS, connect_timeout=AWS_CONNECT_TIMEOUT_SECONDS),
            dynamodb=self._dynamodb,
            redis_client=self.redis_client,
            stream=self.resources.stream_name,
            application=f"{settings.stack_name}-kcl",
            dead_letter_table=self.resources.dead_letter_table,
            producer=ProducerControl(make_adapter_client(settings, "dynamodb"), self.resources.producer_state_table,
                                     fast_retries=settings.fast_retries),
        )

    @cached_property
    def health_checks(self) -> HealthChecks:
        # Probes get one attempt each: a retried probe would hide the failure it exists to report.
        return {
            "redis": redis_check(self.redis_client),
            "dynamodb": dynamodb_check(self._probe("dynamodb"), self.resources.events_table),
            "kinesis": kinesis_check(self._probe("kinesis"), self.resources.stream_name),
        }

    def _probe(self, service: str) -> Any:
        return make_client(
            self._settings, service, max_attempts=1, read_timeout=HEALTH_TIMEOUT_SECONDS,
            connect_timeout=HEALTH_TIMEOUT_SECONDS,
        )
