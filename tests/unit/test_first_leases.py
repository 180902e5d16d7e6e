"""The launcher's first leases of a fresh local stream: the items KCL 3's shard sync would write, only into an
empty lease table, never over a lease a worker wrote, and never for a resharded stream."""

from __future__ import annotations

import threading
from typing import Any

from wikitide.localstack.first_leases import first_leases, lease_table_name, seed

SHARDS = [
    {"ShardId": "shardId-000000000000",
     "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "170141183460469231731687303715884105727"}},
    {"ShardId": "shardId-000000000001",
     "HashKeyRange": {"StartingHashKey": "170141183460469231731687303715884105728",
                      "EndingHashKey": "340282366920938463463374607431768211455"}},
]


class ConditionalCheckFailedException(Exception):
    pass


class ResourceNotFoundException(Exception):
    pass


class ResourceInUseException(Exception):
    pass


class Exceptions:
    ConditionalCheckFailedException = ConditionalCheckFailedException
    ResourceNotFoundException = ResourceNotFoundException
    ResourceInUseException = ResourceInUseException


class FakeDynamoDB:
    """A lease table that is active after `appears_after` DescribeTable calls, with conditional puts; `exists`: a
    table created before (by a worker), which CreateTable refuses."""

    exceptions = Exceptions

    def __init__(self, appears_after: int = 0, items: dict[str, dict[str, Any]] | None = None,
                 exists: bool = True) -> None:
        self.describes = 0
        self.appears_after = appears_after
        self.items = dict(items or {})
        self.exists = exists
        self.created: dict[str, Any] | None = None

    def create_table(self, **request: Any) -> None:
        if self.exists:
            raise ResourceInUseException(request["TableName"])
        self.exists, self.created = True, request

    def describe_table(self, TableName: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        self.describes += 1
        if self.describes <= self.appears_after:
            raise ResourceNotFoundException(TableName)
        return {"Table": {"TableStatus": "ACTIVE"}}

    def scan(self, TableName: str, Limit: int, ConsistentRead: bool) -> dict[str, Any]:  # noqa: N803
        return {"Items": list(self.items.values())[:Limit]}

    def put_item(self, TableName: str, Item: dict[str, Any], ConditionExpression: str) -> None:  # noqa: N803
        assert ConditionExpression == "attribute_not_exists(leaseKey)"
        key = Item["leaseKey"]["S"]
        if key in self.items:
            raise ConditionalCheckFailedException(key)
        self.items[key] = Item


class FakeKinesis:
    def __init__(self, shards: list[dict[str, Any]]) -> None:
        self.shards = shards

    def list_shards(self, **request: Any) -> dict[str, Any]:
        if "NextToken" in request:
            return {"Shards": self.shards[1:]}
        return {"Shards": self.shards[:1], "NextToken": "more"}


def test_a_lease_per_shard_as_the_kcl_writes_it_unowned_at_the_initial_position() -> None:
    leases = first_leases(SHARDS, "TRIM_HORIZON")
    assert leases[1] == {
        "leaseKey": {"S": "shardId-000000000001"},
        "leaseCounter": {"N": "0"},
        "ownerSwitchesSinceCheckpoint": {"N": "0"},
        "checkpoint": {"S": "TRIM_HORIZON"},
        "checkpointSubSequenceNumber": {"N": "0"},
        "startingHashKey": {"S": "170141183460469231731687303715884105728"},
        "endingHashKey": {"S": "340282366920938463463374607431768211455"},
    }
    assert [lease["checkpoint"]["S"] for lease in first_leases(SHARDS, "LATEST")] == ["LATEST", "LATEST"]


def test_no_leases_for_a_resharded_stream_or_a_timestamp_position() -> None:
    child = {**SHARDS[0], "ShardId": "shardId-000000000002", "ParentShardId": "shardId-000000000000"}
    assert first_leases([SHARDS[1], child], "TRIM_HORIZON") == []
    assert first_leases(SHARDS, "AT_TIMESTAMP") == []


def test_the_table_name_is_the_workers_own() -> None:
    assert lease_table_name({}, "wikitide-local") == "wikitide-local-kcl"
    assert lease_table_name({"applicationName": "app"}, "s") == "app"
    assert lease_table_name({"applicationName": "app", "leaseTableName": "leases"}, "s") == "leases"


def test_the_launcher_creates_the_table_as_the_kcl_would_then_writes_every_shard() -> None:
    dynamodb = FakeDynamoDB(exists=False)
    written = seed(dynamodb, FakeKinesis(SHARDS), table="app", stream="s", initial_position="TRIM_HORIZON",
                   stop=threading.Event())
    # KCL 3.1.3's DynamoDBLeaseRefresher.createTableRequestBuilder with its default (on-demand) table config.
    assert dynamodb.created == {
        "TableName": "app",
        "KeySchema": [{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "leaseKey", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    assert written == 2 and sorted(dynamodb.items) == ["shardId-000000000000", "shardId-000000000001"]


def test_seeding_waits_for_a_table_the_worker_created_to_be_active_then_writes_every_shard() -> None:
    dynamodb = FakeDynamoDB(appears_after=3)
    written = seed(dynamodb, FakeKinesis(SHARDS), table="t", stream="s", initial_position="TRIM_HORIZON",
                   stop=threading.Event())
    assert written == 2 and dynamodb.describes == 4
    assert sorted(dynamodb.items) == ["shardId-000000000000", "shardId-000000000001"]


def test_a_table_a_worker_already_filled_is_left_alone() -> None:
    own = {"leaseKey": {"S": "shardId-000000000000"}, "leaseOwner": {"S": "worker-1"}, "checkpoint": {"S": "49"}}
    dynamodb = FakeDynamoDB(items={"shardId-000000000000": own})
    assert seed(dynamodb, FakeKinesis(SHARDS), table="t", stream="s", initial_position="TRIM_HORIZON",
                stop=threading.Event()) == 0
    assert dynamodb.items == {"shardId-000000000000": own}


def test_a_lease_the_worker_writes_meanwhile_is_kept() -> None:
    class Racing(FakeDynamoDB):
        def scan(self, TableName: str, Limit: int, ConsistentRead: bool) -> dict[str, Any]:  # noqa: N803
            found = super().scan(TableName, Limit, ConsistentRead)
            # The worker's own sync writes shard 1 between the emptiness check and the launcher's writes.
            self.items["shardId-000000000001"] = {"leaseKey": {"S": "shardId-000000000001"}, "checkpoint": {"S": "7"}}
            return found

    dynamodb = Racing()
    assert seed(dynamodb, FakeKinesis(SHARDS), table="t", stream="s", initial_position="TRIM_HORIZON",
                stop=threading.Event()) == 1
    assert dynamodb.items["shardId-000000000001"]["checkpoint"] == {"S": "7"}


def test_without_a_table_in_time_nothing_is_written() -> None:
    dynamodb = FakeDynamoDB(appears_after=10**6)
    assert seed(dynamodb, FakeKinesis(SHARDS), table="t", stream="s", initial_position="TRIM_HORIZON",
                stop=threading.Event(), wait_seconds=0.3) == 0
    assert dynamodb.items == {}
