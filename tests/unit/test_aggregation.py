"""Aggregated records: the format read back, the producer's packing per shard, and what happens across a reshard
that the producer's shard map has not seen yet (a fake Kinesis that routes by hash key as Kinesis does, and reads
back as the KCL 3.1.3 de-aggregates: an aggregate with a user record outside the shard's range is dropped whole)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from kcl_app.handler import SUB_SEQUENCE_SPAN, StreamRecord, ordinal, position_ordinal
from producer.batcher import Entry
from producer.kinesis_writer import AggregatingWriter, KinesisRecordWriter, KinesisWriter, ShardMap
from wikitide.aggregation import HASH_KEY_SPACE, Aggregate, hash_key, user_records


@dataclass
class Shard:
    shard_id: str
    low: int
    high: int
    is_open: bool = True
    records: list[tuple[str, bytes]] = field(default_factory=list)


class RoutingKinesis:
    """PutRecord/PutRecords/ListShards of a stream whose records go to the open shard holding their hash key."""

    def __init__(self, shards: int) -> None:
        width = HASH_KEY_SPACE // shards
        self.shards = [Shard(f"shardId-{i:012d}", i * width, HASH_KEY_SPACE - 1 if i == shards - 1 else
                             (i + 1) * width - 1) for i in range(shards)]
        self.list_calls = 0

    def split(self, index: int) -> None:
        """Close an open shard and open its two halves, as SplitShard does."""
        parent = [s for s in self.shards if s.is_open][index]
        parent.is_open = False
        middle = (parent.low + parent.high) // 2
        count = len(self.shards)
        self.shards += [Shard(f"shardId-{count:012d}", parent.low, middle),
                        Shard(f"shardId-{count + 1:012d}", middle + 1, parent.high)]

    def _route(self, partition_key: str, data: bytes) -> str:
        point = hash_key(partition_key)
        shard = next(s for s in self.shards if s.is_open and s.low <= point <= s.high)
        shard.records.append((partition_key, data))
        return shard.shard_id

    def put_record(self, StreamName: str, Data: bytes, PartitionKey: str) -> dict[str, Any]:  # noqa: N803
        return {"ShardId": self._route(PartitionKey, Data), "SequenceNumber": "1"}

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        return {"FailedRecordCount": 0, "Records": [
            {"ShardId": self._route(r["PartitionKey"], r["Data"]), "SequenceNumber": "1"} for r in Records]}

    def list_shards(self, StreamName: str) -> dict[str, Any]:  # noqa: N803
        self.list_calls += 1
        return {"Shards": [
            {"ShardId": s.shard_id, "HashKeyRange": {"StartingHashKey": str(s.low), "EndingHashKey": str(s.high)},
             "SequenceNumberRange": {"StartingSequenceNumber": "0", **({} if s.is_open else
                                                                      {"EndingSequenceNumber": "9"})}}
            for s in self.shards]}

    def delivered(self) -> dict[str, list[tuple[str, bytes]]]:
        """What the KCL hands the processors, per shard: user records of the aggregates whose every user record
        hashes into the shard, and the plain records."""
        found: dict[str, list[tuple[str, bytes]]] = {}
        for shard in self.shards:
            for partition_key, data in shard.records:
                users = [(key or partition_key, body) for key, body in user_records(data)]
                if all(shard.low <= hash_key(key) <= shard.high for key, _ in users):
                    found.setdefault(shard.shard_id, []).extend(users)
        return found


def _entries(count: int, pages: int | None = None, call: int = 0) -> list[Entry]:
    return [Entry(json.dumps({"call": call, "n": n}).encode() + b"\n", f"enwiki:Page {n % (pages or count)}")
            for n in range(count)]


def _home(kinesis: RoutingKinesis, partition_key: str) -> str:
    point = hash_key(partition_key)
    return next(s.shard_id for s in kinesis.shards if s.is_open and s.low <= point <= s.high)


@pytest.mark.parametrize("inner", [KinesisWriter, KinesisRecordWriter])
def test_the_entries_for_one_shard_share_a_record_and_come_back_in_order(inner: Any) -> None:
    kinesis = RoutingKinesis(shards=2)
    writer = AggregatingWriter(inner(kinesis, "s"), ShardMap(kinesis, "s"))
    entries = _entries(200, pages=40)
    shards = writer.put(entries)
    writer.close()
    assert shards == [_home(kinesis, e.partition_key) for e in entries]
    assert sum(len(s.records) for s in kinesis.shards) == 5 * 2  # 5 rounds of 40 pages, one record per shard each
    delivered = kinesis.delivered()
    assert sorted(data for users in delivered.values() for _, data in users) == sorted(e.data for e in entries)
    for shard_id, users in delivered.items():
        assert all(_home(kinesis, key) == shard_id for key, _ in users)
        for page in {key for key, _ in users}:
            numbers = [json.loads(data)["n"] for key, data in users if key == page]
            assert numbers == sorted(numbers)


def test_an_aggregate_that_lands_outside_its_entries_shard_after_a_reshard_is_written_again_one_by_one() -> None:
    kinesis = RoutingKinesis(shards=1)
    writer = AggregatingWriter(KinesisWriter(kinesis, "s"), ShardMap(kinesis, "s"))
    writer.put(_entries(10))
    assert kinesis.list_calls == 1
    kinesis.split(0)  # the writer's map still has the one parent shard: its next aggregate spans both children
    entries = _entries(50, call=1)
    shards = writer.put(entries)

    assert kinesis.list_calls >= 2
    assert shards == [_home(kinesis, e.partition_key) for e in entries]
    children = kinesis.shards[1:]
    dropped = [r for s in children for key, r in s.records
               if any(not s.low <= hash_key(k or key) <= s.high for k, _ in user_records(r))]
    assert dropped, "the stale map must have put an aggregate across the children (the fault this test is about)"
    sent = {e.data for e in entries}
    delivered = [(shard_id, key, data) for shard_id, users in kinesis.delivered().items() for key, data in users
                 if data in sent]
    # Each entry reaches its processors exactly once, on the shard its page hashes to.
    assert sorted(data for _, _, data in delivered) == sorted(sent)
    assert all(_home(kinesis, key) == shard_id for shard_id, key, _ in delivered)
    # The next call packs by the map read after the reshard: no more strays.
    before = sum(len(s.records) for s in children)
    writer.put(_entries(50, call=2))
    assert sum(len(s.records) for s in children) - before == 2


def test_an_entry_too_large_to_share_a_record_goes_alone_and_one_alone_is_not_wrapped() -> None:
    kinesis = RoutingKinesis(shards=1)
    writer = AggregatingWriter(KinesisWriter(kinesis, "s"), ShardMap(kinesis, "s"), max_bytes=1000)
    large, small = Entry(b"x" * 2000, "enwiki:Large"), Entry(b"y" * 10, "enwiki:Small")
    writer.put([large, small])
    assert kinesis.shards[0].records == [("enwiki:Large", b"x" * 2000), ("enwiki:Small", b"y" * 10)]


def test_a_record_that_is_not_a_well_formed_aggregate_is_one_plain_record() -> None:
    aggregate = Aggregate()
    for n in range(3):
        assert aggregate.add(f"k{n}", f"{n}\n".encode())
    key, data = aggregate.record()
    assert key == "k0"
    assert user_records(data) == [("k0", b"0\n"), ("k1", b"1\n"), ("k2", b"2\n")]
    for broken in (data[:-1] + bytes([data[-1] ^ 1]), data[:10], b"plain", data[:4] + b"\xff" * 40):
        assert user_records(broken) == [(None, broken)]


def test_a_position_names_the_kinesis_record_and_reads_back_as_its_ordinal() -> None:
    plain = StreamRecord(b"", "shardId-1", ordinal("49650000000000000000001"), 0)
    assert plain.position == "shardId-1#49650000000000000000001"
    user = StreamRecord(b"", "shardId-1", ordinal("49650000000000000000001", 7), 0)
    assert user.position == "shardId-1#49650000000000000000001.7"
    assert position_ordinal(user.position) == ("shardId-1", user.sequence)
    assert position_ordinal(plain.position) == ("shardId-1", plain.sequence)
    # Ordered by the Kinesis record first, then within the aggregate.
    assert ordinal("10", SUB_SEQUENCE_SPAN - 1) < ordinal("11") < ordinal("11", 1) < ordinal("12")
