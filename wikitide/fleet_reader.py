"""Reads what `wikitide workers` shows: the stream's shards (Kinesis), the leases (the KCL's DynamoDB lease
table, named after the application) and the processors' progress (Redis). Clients are passed in."""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from botocore.exceptions import ClientError

from wikitide.errors import ConfigError, DependencyUnavailable
from wikitide.fleet_status import LeaseInfo, ShardInfo, ShardRow, build_rows
from wikitide.shard_progress import read_progress

logger = logging.getLogger(__name__)


def read_shards(kinesis: Any, stream: str) -> list[ShardInfo]:
    shards: list[ShardInfo] = []
    kwargs: dict[str, Any] = {"StreamName": stream}
    try:
        while True:
            page = kinesis.list_shards(**kwargs)
            for shard in page["Shards"]:
                parents = tuple(p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p)
                is_open = "EndingSequenceNumber" not in shard["SequenceNumberRange"]
                shards.append(ShardInfo(shard["ShardId"], parents, is_open))
            if not page.get("NextToken"):
                return shards
            kwargs = {"NextToken": page["NextToken"]}
    except ClientError as exc:
        raise DependencyUnavailable(f"listing the shards of {stream}: {exc}") from exc


def read_leases(dynamodb: Any, table: str) -> list[LeaseInfo]:
    leases: list[LeaseInfo] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    try:
        while True:
            page = dynamodb.scan(**kwargs)
            for item in page["Items"]:
                leases.append(LeaseInfo(
                    shard_id=item["leaseKey"]["S"],
                    owner=item.get("leaseOwner", {}).get("S"),
                    checkpoint=item.get("checkpoint", {}).get("S"),
                ))
            if "LastEvaluatedKey" not in page:
                return leases
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            raise ConfigError(
                f"no lease table {table!r}: no worker of that application has started (or pass --application)"
            ) from exc
        raise DependencyUnavailable(f"reading the lease table {table}: {exc}") from exc


def read_status(kinesis: Any, dynamodb: Any, redis_client: Any | None, stream: str, application: str) -> list[ShardRow]:
    """The rows of `wikitide workers`; without a Redis client (or with Redis down) the lag columns stay empty."""
    progress = {}
    if redis_client is not None:
        try:
            progress = read_progress(redis_client)
        except (redis.RedisError, OSError) as exc:
            logger.warning("no lag figures: Redis cannot be read: %s", exc)
    return build_rows(read_shards(kinesis, stream), read_leases(dynamodb, application), progress,
                      now_ms=int(time.time() * 1000))
