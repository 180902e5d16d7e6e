"""The lease table and first leases of a fresh local stream, written by `wikitide local up` so that the KCL worker
does not sit out KCL 3's start-up waits.

A KCL 3 worker that finds its lease table empty waits a random 1 to 30 s (not configurable; `Scheduler.
shouldInitiateLeaseSync` in KCL 3.1.3), checking every 3 s whether another worker has filled it, before it lists
the shards and writes a lease per shard itself. On AWS that spreads a fleet's first start; on the local stack,
where the first counted event is what a user waits for after `make up`, it was the largest single step (21 s of
44 in one measured start). So the launcher writes the same leases the worker's shard sync would: one per open shard
of a stream that has never been resharded, with the initial position of the properties file as its checkpoint, no
owner, and the shard's hash key range (the attributes of KCL 3.1.3's `DynamoDBLeaseSerializer.toDynamoRecord`).

It also creates the lease table itself, as the worker would (`DynamoDBLeaseRefresher.createTableRequestBuilder`: a
`leaseKey` string hash key, on demand; the worker adds its index and its other tables itself), while the worker's
JVM is still starting: a worker that finds the table already holding leases goes on at once. When the worker
created the table first, its first look found it empty and only its next one, 3 s later, found the leases.

Each lease write is conditional on the lease not existing, so a worker that synced first keeps its own; anything
unexpected (a stream with parent shards, a position other than TRIM_HORIZON or LATEST, an error) leaves the table
and the leases to the worker, as before, only slower.

Local only: the launcher sits above the deployables, and nothing on AWS runs it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

logger = logging.getLogger(__name__)

# Checkpoints a lease can start from without a timestamp (`initialPositionInStream`).
STARTING_CHECKPOINTS = {"TRIM_HORIZON", "LATEST"}
# A lease table is active within moments of its creation (the launcher's or the worker's); past this the launcher
# leaves the leases to the worker.
TABLE_WAIT_SECONDS = 60.0
POLL_SECONDS = 0.25


def lease_table_name(properties: Mapping[str, str], stack_name: str) -> str:
    """The lease table a worker with these properties uses (`kcl_app.daemon` sets the application name)."""
    return properties.get("leaseTableName") or properties.get("applicationName") or f"{stack_name}-kcl"


def first_leases(shards: Sequence[Mapping[str, Any]], initial_position: str) -> list[dict[str, dict[str, str]]]:
    """The lease items for `shards` (ListShards' entries) of a stream that has never been resharded, starting at
    `initial_position`; none when a shard has a parent or the position needs a timestamp."""
    if initial_position not in STARTING_CHECKPOINTS:
        return []
    if any(shard.get("ParentShardId") or shard.get("AdjacentParentShardId") for shard in shards):
        return []
    return [
        {
            "leaseKey": {"S": shard["ShardId"]},
            "leaseCounter": {"N": "0"},
            "ownerSwitchesSinceCheckpoint": {"N": "0"},
            "checkpoint": {"S": initial_position},
            "checkpointSubSequenceNumber": {"N": "0"},
            "startingHashKey": {"S": shard["HashKeyRange"]["StartingHashKey"]},
            "endingHashKey": {"S": shard["HashKeyRange"]["EndingHashKey"]},
        }
        for shard in shards
    ]


def create_table(dynamodb: Any, table: str) -> bool:
    """Create the lease table as a KCL 3 worker would; False when it exists already (a worker's, or a previous
    run's)."""
    try:
        dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except dynamodb.exceptions.ResourceInUseException:
        return False
    return True


def seed(dynamodb: Any, kinesis: Any, *, table: str, stream: str, initial_position: str,
         stop: threading.Event, wait_seconds: float = TABLE_WAIT_SECONDS) -> int:
    """Create `table` unless it exists, wait for it to be active, then write the first leases of `stream` if the
    table is still empty. Returns how many this wrote."""
    create_table(dynamodb, table)
    deadline = time.monotonic() + wait_seconds
    while not _active(dynamodb, table):
        if time.monotonic() > deadline or stop.wait(POLL_SECONDS):
            return 0
    if dynamodb.scan(TableName=table, Limit=1, ConsistentRead=True).get("Items"):
        return 0
    shards: list[dict[str, Any]] = []
    request: dict[str, Any] = {"StreamName": stream}
    while True:
        page = kinesis.list_shards(**request)
        shards += page["Shards"]
        if not page.get("NextToken"):
            break
        request = {"NextToken": page["NextToken"]}
    written = 0
    for item in first_leases(shards, initial_position):
        try:
            dynamodb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(leaseKey)")
            written += 1
        except dynamodb.exceptions.ConditionalCheckFailedException:
            pass  # the worker wrote it first
    return written


def seed_in_background(dynamodb: Any, kinesis: Any, *, table: str, stream: str, initial_position: str,
                       stop: threading.Event) -> threading.Thread:
    """`seed` in a daemon thread; a failure is logged and leaves the leases to the worker."""

    def _run() -> None:
        try:
            written = seed(dynamodb, kinesis, table=table, stream=stream, initial_position=initial_position,
                           stop=stop)
        except Exception as exc:  # an optimisation only: the worker writes the leases itself
            logger.warning("the first leases were left to the KCL worker (%s: %s)", type(exc).__name__, exc)
            return
        if written:
            logger.info("wrote the first %d leases of %s into %s", written, stream, table)

    thread = threading.Thread(target=_run, name="first-leases", daemon=True)
    thread.start()
    return thread


def _active(dynamodb: Any, table: str) -> bool:
    try:
        status: str = dynamodb.describe_table(TableName=table)["Table"]["TableStatus"]
        return status == "ACTIVE"
    except dynamodb.exceptions.ResourceNotFoundException:
        return False
