"""Per-shard progress and the processing journal against the real redis-server."""

from dataclasses import dataclass

import pytest
import redis

from kcl_app.progress import RedisProgress, read_journal, read_progress
from wikitide.localstack.services import free_port

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Record:
    sequence_number: str
    timestamp_millis: int
    sub_sequence_number: int = 0


def test_the_last_record_of_each_batch_is_the_shards_progress(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    progress = RedisProgress(client, journal=True, clock=lambda: 1_700_000_010.0)
    progress.batch_done("shardId-1", [Record("10", 1_700_000_000_000), Record("11", 1_700_000_001_000)], 500)
    progress.batch_done("shardId-2", [Record("20", 1_700_000_002_000)], None)
    progress.batch_done("shardId-1", [Record("12", 1_700_000_003_000)], 0)

    found = read_progress(client)
    assert sorted(found) == ["shardId-1", "shardId-2"]
    assert (found["shardId-1"].sequence, found["shardId-1"].arrival_ms) == ("12", 1_700_000_003_000)
    assert found["shardId-1"].processed_at_ms == 1_700_000_010_000
    assert found["shardId-1"].millis_behind_latest == 0
    assert found["shardId-2"].millis_behind_latest is None
    assert client.hget("wt:kcl:shard:shardId-1", "records") == "3"
    assert read_journal(client) == [("shardId-1", "10"), ("shardId-1", "11"), ("shardId-2", "20"), ("shardId-1", "12")]


def test_without_the_journal_only_progress_is_written(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    RedisProgress(client).batch_done("shardId-1", [Record("10", 1)], None)
    assert read_journal(client) == []
    assert read_progress(client)["shardId-1"].sequence == "10"


def test_an_unreachable_redis_does_not_fail_the_batch() -> None:
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.5)
    RedisProgress(client, journal=True).batch_done("shardId-1", [Record("10", 1)], None)


def test_the_user_records_of_one_aggregate_are_told_apart_in_the_journal(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    RedisProgress(client, journal=True).batch_done(
        "shardId-1", [Record("10", 1), Record("11", 2, 0), Record("11", 2, 1), Record("11", 2, 2)], None)
    assert read_journal(client) == [("shardId-1", "10"), ("shardId-1", "11"), ("shardId-1", "11/1"),
                                    ("shardId-1", "11/2")]
    assert read_progress(client)["shardId-1"].sequence == "11"
