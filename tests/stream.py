"""Reading a Kinesis stream back as the KCL would hand it to the processor: per shard, in order, aggregated records
as their user records."""

from __future__ import annotations

from typing import Any

from kcl_app.handler import StreamRecord, ordinal
from wikitide.aggregation import user_records
from wikitide.envelope import event_of


def read_records(client: Any, stream: str) -> dict[str, list[StreamRecord]]:
    by_shard: dict[str, list[StreamRecord]] = {}
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        shard_id = shard["ShardId"]
        records = by_shard.setdefault(shard_id, [])
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = client.get_records(ShardIterator=iterator, Limit=1000)
            for record in response["Records"]:
                arrival_ms = int(record["ApproximateArrivalTimestamp"].timestamp() * 1000)
                for sub, (_, data) in enumerate(user_records(record["Data"])):
                    records.append(
                        StreamRecord(event_of(data), shard_id, ordinal(record["SequenceNumber"], sub), arrival_ms))
            if not response["Records"] and response.get("MillisBehindLatest", 0) == 0:
                break
            iterator = response.get("NextShardIterator")
    return by_shard
