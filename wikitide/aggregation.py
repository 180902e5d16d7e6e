"""Several events in one Kinesis record, in the Kinesis Producer Library's aggregated format. Pure.

Why: the local Kinesis (kinesis-mock) spends its CPU per record, not per byte (about 15 ms a call, and each
`GetRecords` scans the shard's stored records), and AWS bills and limits a shard per record as well (1,000 records/s
a shard). An aggregate carries up to `MAX_AGGREGATE_BYTES` of events in one record.

The format (the KPL's, written with AWS's `aws-kinesis-agg`): 4 magic bytes, a protobuf `AggregatedRecord` (a
partition key table and the user records, each with its data and the index of its partition key), and the MD5 of
the protobuf. Who reads it:
- the KCL (MultiLangDaemon) de-aggregates before the Python processor sees a record, handing each user record over
  with the aggregate's sequence number, its own `subSequenceNumber` and its own partition key. It **drops a whole
  aggregate, silently, when any user record's partition key hashes outside the receiving shard's range**
  (`AggregatorUtil.deaggregate` in KCL 3.1.3): the producer groups user records by the shard their partition
  keys hash to and checks where each aggregate landed (`producer.kinesis_writer.AggregatingWriter`);
- Firehose reading the stream (`KinesisStreamAsSource`) de-aggregates before delivery, so the archive holds
  events, not aggregates; the local forwarder does the same with `user_records`.

A record that is not a well-formed aggregate (no magic, a wrong digest, a protobuf that does not parse) is one
plain record, as the KCL treats it: a raw event written by another client passes through unchanged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import aws_kinesis_agg

# From the aggregator module, which first puts the package's own folder on sys.path: its generated protobuf modules
# import each other as top-level modules.
from aws_kinesis_agg.aggregator import AggRecord, messages_pb2
from google.protobuf.message import DecodeError

MAGIC = aws_kinesis_agg.MAGIC
DIGEST_BYTES = aws_kinesis_agg.DIGEST_SIZE
# A Kinesis record holds 1 MiB with its partition key (256 characters at most). The library sizes partition keys
# in characters, not UTF-8 bytes (a title in Cyrillic is twice its length in bytes), so the bound leaves room.
MAX_AGGREGATE_BYTES = 1024 * 1024 - 64 * 1024
HASH_KEY_SPACE = 2**128


def hash_key(partition_key: str) -> int:
    """Where Kinesis puts a record: the MD5 of its partition key's UTF-8 bytes, as a 128-bit integer."""
    return int.from_bytes(hashlib.md5(partition_key.encode("utf-8"), usedforsecurity=False).digest(), "big")


@dataclass
class Aggregate:
    """User records being packed into one Kinesis record: `add` until it says the next one does not fit."""

    max_bytes: int = MAX_AGGREGATE_BYTES
    partition_keys: list[str] = field(default_factory=list)
    _record: AggRecord = field(init=False)

    def __post_init__(self) -> None:
        self._record = AggRecord(max_size=self.max_bytes)

    def add(self, partition_key: str, data: bytes) -> bool:
        """Pack one user record; False (nothing packed) when it does not fit beside those packed, or at all."""
        try:
            added = bool(self._record.add_user_record(partition_key, data))
        except ValueError:  # larger than an aggregate on its own
            return False
        if added:
            self.partition_keys.append(partition_key)
        return added

    def __len__(self) -> int:
        return len(self.partition_keys)

    def record(self) -> tuple[str, bytes]:
        """The Kinesis record: its partition key (the first user record's, so the aggregate lands on that
        record's shard) and its data."""
        partition_key, _, data = self._record.get_contents()
        return partition_key, data


def user_records(data: bytes) -> list[tuple[str | None, bytes]]:
    """The (partition key, data) of each user record of a Kinesis record, in order: several for an aggregate, the
    record itself (partition key None: the caller's own) for anything else."""
    body = data[len(MAGIC):-DIGEST_BYTES] if len(data) > len(MAGIC) + DIGEST_BYTES else b""
    if not data.startswith(MAGIC) or not body:
        return [(None, data)]
    if hashlib.md5(body, usedforsecurity=False).digest() != data[-DIGEST_BYTES:]:
        return [(None, data)]
    aggregated = messages_pb2.AggregatedRecord()
    try:
        aggregated.ParseFromString(body)
    except DecodeError:
        return [(None, data)]
    keys = list(aggregated.partition_key_table)
    if any(record.partition_key_index >= len(keys) for record in aggregated.records):
        return [(None, data)]
    return [(keys[record.partition_key_index], bytes(record.data)) for record in aggregated.records]
