"""The real adapters, built from settings: Redis from `REDIS_URL`, AWS names from the stack's outputs.

Each piece is built once, when first asked for, so an app given fakes for some ports never touches the
services behind them. Building calls no service except CloudFormation, for the stack's outputs.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from api.dynamo_edits import DynamoEdits
from api.dynamo_stats import DynamoStats
from api.fallback_stats import FallbackStats
from api.health import dynamodb_check, kinesis_check, redis_check
from api.ports import HealthChecks
from api.redis_stats import RedisStats, is_ready
from wikitide.aws import make_client
from wikitide.settings import Settings
from wikitide.stack import StackResources, read_outputs

REDIS_TIMEOUT_SECONDS = 2
# A request that waits long helps nobody: the dashboard asks again in two seconds.
REDIS_RETRIES = 2
AWS_READ_ATTEMPTS = 2
AWS_READ_TIMEOUT_SECONDS = 3.0
HEALTH_TIMEOUT_SECONDS = 2.0


class Adapters:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @cached_property
    def redis_client(self) -> redis.Redis:
        retries = 0 if self._settings.fast_retries else REDIS_RETRIES
        return redis.Redis.from_url(
            self._settings.require_redis_url(),
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            decode_responses=True,
            retry=Retry(ExponentialWithJitterBackoff(cap=0.5, base=0.05), retries),
        )

    @cached_property
    def resources(self) -> StackResources:
        return read_outputs(make_client(self._settings, "cloudformation"), self._settings.stack_name)

    @cached_property
    def stats(self) -> FallbackStats:
        return FallbackStats(
            RedisStats(self.redis_client),
            lambda: DynamoStats(self._dynamodb, self.resources.counters_table),
            lambda: is_ready(self.redis_client),
        )

    @cached_property
    def _dynamodb(self) -> Any:
        return make_client(
            self._settings, "dynamodb", max_attempts=AWS_READ_ATTEMPTS, read_timeout=AWS_READ_TIMEOUT_SECONDS
        )

    @cached_property
    def edits(self) -> DynamoEdits:
        return DynamoEdits(self._dynamodb, self.resources.events_table, self.resources.latest_page_table)

    @cached_property
    def health_checks(self) -> HealthChecks:
        # Probes get one attempt each: a retried probe would hide the failure it exists to report.
        return {
            "redis": redis_check(self.redis_client),
            "dynamodb": dynamodb_check(self._probe("dynamodb"), self.resources.events_table),
            "kinesis": kinesis_check(self._probe("kinesis"), self.resources.stream_name),
        }

    def _probe(self, service: str) -> Any:
        return make_client(self._settings, service, max_attempts=1, read_timeout=HEALTH_TIMEOUT_SECONDS)
