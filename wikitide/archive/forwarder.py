"""The local stack's stand-in for Firehose's Kinesis source: read the stream, deliver it with `PutRecordBatch`.

On AWS the delivery stream reads Kinesis itself (`KinesisStreamAsSource`, `cloudformation/archive.yaml`). moto's
Firehose delivers only `DirectPut` streams, and writes each `PutRecordBatch` as given, at once, as one object
(no buffering, no compression). So locally this forwarder does Firehose's reading half: it reads every shard like
any consumer, buffers what it read (`buffer_seconds`, `buffer_bytes`, as Firehose's buffering hints), gzips it and
puts it on a DirectPut delivery stream, whose S3 destination writes the object under the same key layout
(`wikitide.archive.layout`). Records go out byte for byte: each is one line already (`wikitide.envelope`), so the
object is gzip NDJSON exactly as Firehose writes it. An aggregated record (`wikitide.aggregation`) goes out as its
user records, as Firehose de-aggregates what it reads from a stream.

Delivery is at least once, as Firehose's: each shard's position (`ShardPositions`, a file in the state directory)
moves only after the records read before it are in an object, so a crash or a failed call repeats a buffer and
never loses one. A child shard is read only after its parents are finished (`lineage.readable`). Nothing in a
record is parsed, so no record can stop the forwarder. Every call has client timeouts and a bounded retry policy;
past it the forwarder exits with an error and its supervisor restarts it from the saved positions.

Why not a KCL application: one process, a few shards, no lease balancing to do; a file beside the other local
state is enough to resume, and it is checked against the stream's creation time, so a recreated stream (the
emulators keep nothing between runs) starts from its beginning rather than from a stale position.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from wikitide import aws, retry
from wikitide.aggregation import user_records
from wikitide.archive.lineage import Shard, readable, shard_from_listing

logger = logging.getLogger(__name__)

# PutRecordBatch limits: 500 records, 4 MiB per call, 1,000 KiB per record.
MAX_CALL_RECORDS = 500
MAX_PIECE_BYTES = 1000 * 1024
# Uncompressed bytes per object: gzip adds at most a few bytes per 16 KiB, so the object fits one call.
MAX_OBJECT_SOURCE_BYTES = 3 * 1024 * 1024
SHARD_REFRESH_SECONDS = 10.0
# Firehose reads each shard once a second. Reading as soon as the last read returned anything (as this did) kept
# kinesis-mock, whose every call costs milliseconds of CPU and whose GetRecords scans the shard's stored records,
# answering back-to-back reads for a buffer that waits 60 s anyway. A full page means a backlog: read on at once.
POLL_SECONDS = 1.0
GET_RECORDS_LIMIT = 1000


class ShardPositions:
    """Each shard's last delivered sequence number, and the shards finished, in a JSON file (written atomically)."""

    def __init__(self, path: Path, stream: str, created: str) -> None:
        self._path = path
        self._stream, self._created = stream, created
        self.after: dict[str, str] = {}
        self.finished: set[str] = set()
        self._load()

    def _load(self) -> None:
        try:
            saved = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            logger.warning("archive positions %s unreadable (%s): starting from the stream's start", self._path, exc)
            return
        if saved.get("stream") != self._stream or saved.get("created") != self._created:
            logger.info("archive positions %s are for another stream: starting from the beginning", self._path)
            return
        self.after = {str(k): str(v) for k, v in saved.get("after", {}).items()}
        self.finished = {str(s) for s in saved.get("finished", [])}

    def save(self) -> None:
        body = {"stream": self._stream, "created": self._created, "after": self.after,
                "finished": sorted(self.finished)}
        temporary = self._path.with_suffix(".tmp")
        temporary.write_text(json.dumps(body), encoding="utf-8")
        os.replace(temporary, self._path)


class KinesisReader:
    """Kinesis adapter: one attempt per call on the client, retries under `retry.ARCHIVE_KINESIS`."""

    def __init__(self, client: Any, stream: str, *, fast: bool = False) -> None:
        self._client, self._stream, self._fast = client, stream, fast

    def _call(self, operation: Callable[[], Any], what: str) -> Any:
        return aws.call(operation, what=f"{what} on {self._stream}", policy=retry.ARCHIVE_KINESIS, fast=self._fast)

    def created(self) -> str:
        summary = self._call(lambda: self._client.describe_stream_summary(StreamName=self._stream), "DescribeStream")
        return str(summary["StreamDescriptionSummary"]["StreamCreationTimestamp"].isoformat())

    def shards(self) -> list[Shard]:
        listed: list[Shard] = []
        token: str | None = None
        while True:
            arguments = {"NextToken": token} if token else {"StreamName": self._stream}
            page = self._call(lambda a=arguments: self._client.list_shards(**a), "ListShards")  # type: ignore[misc]
            listed.extend(shard_from_listing(item) for item in page["Shards"])
            token = page.get("NextToken")
            if not token:
                return listed

    def iterator(self, shard_id: str, after: str | None) -> str:
        where = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after} if after else {
            "ShardIteratorType": "TRIM_HORIZON"}
        answer = self._call(
            lambda: self._client.get_shard_iterator(StreamName=self._stream, ShardId=shard_id, **where),
            "GetShardIterator",
        )
        return str(answer["ShardIterator"])

    def records(self, iterator: str) -> tuple[list[dict[str, Any]], str | None] | None:
        """The next records and iterator (None once the shard is closed and read), or None if the iterator expired."""

        def attempt() -> Any:
            try:
                return self._client.get_records(ShardIterator=iterator, Limit=GET_RECORDS_LIMIT)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ExpiredIteratorException":
                    return None
                raise

        answer = self._call(attempt, "GetRecords")
        if answer is None:
            return None
        return answer["Records"], answer.get("NextShardIterator")


class FirehoseSink:
    """Firehose adapter: gzip the lines into objects, one `PutRecordBatch` per object, retried whole."""

    def __init__(self, client: Any, delivery_stream: str, *, fast: bool = False) -> None:
        self._client, self._name, self._fast = client, delivery_stream, fast
        self.objects = 0

    def deliver(self, lines: Sequence[bytes]) -> None:
        """Put every line into objects, or raise DependencyUnavailable / RequestRefused. At least once: a call
        retried after a timeout may have written its object already."""
        for group in _groups(lines, MAX_OBJECT_SOURCE_BYTES):
            self._put(gzip.compress(b"".join(group), compresslevel=6))

    def _put(self, blob: bytes) -> None:
        # moto writes a call's records, concatenated in order, as one object: pieces of one gzip stream.
        pieces = [{"Data": blob[i:i + MAX_PIECE_BYTES]} for i in range(0, len(blob), MAX_PIECE_BYTES)]

        def attempt() -> None:
            answer = self._client.put_record_batch(DeliveryStreamName=self._name, Records=pieces)
            if answer.get("FailedPutCount", 0):
                raise aws.Retryable(f"{answer['FailedPutCount']} of {len(pieces)} pieces failed")

        aws.call(attempt, what=f"PutRecordBatch to {self._name}", policy=retry.ARCHIVE_FIREHOSE, fast=self._fast)
        self.objects += 1


def _groups(lines: Sequence[bytes], limit: int) -> list[list[bytes]]:
    groups: list[list[bytes]] = [[]]
    size = 0
    for line in lines:
        if groups[-1] and size + len(line) > limit:
            groups.append([])
            size = 0
        groups[-1].append(line)
        size += len(line)
    return [group for group in groups if group]


@dataclass
class _Reader:
    shard_id: str
    iterator: str
    read_to: str | None = None  # last sequence number read into the buffer
    is_ended: bool = False


@dataclass
class ForwarderStats:
    records: int = 0
    objects: int = 0
    flushes: int = 0


@dataclass
class Forwarder:
    kinesis: KinesisReader
    sink: FirehoseSink
    positions: ShardPositions
    buffer_seconds: float = 60.0
    buffer_bytes: int = 5 * 1024 * 1024
    clock: Callable[[], float] = time.monotonic
    stats: ForwarderStats = field(default_factory=ForwarderStats)

    def __post_init__(self) -> None:
        self._readers: dict[str, _Reader] = {}
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._buffer_since: float | None = None
        self._listed_at: float | None = None

    def run(self, stop: threading.Event) -> ForwarderStats:
        """Forward until `stop` is set; what was read is delivered and its positions saved before returning."""
        while not stop.is_set():
            if self._listed_at is None or self.clock() - self._listed_at >= SHARD_REFRESH_SECONDS:
                self._refresh()
            behind = self._poll()
            if self._is_due():
                self.flush()
            if not behind:
                stop.wait(POLL_SECONDS)
        self.flush()
        return self.stats

    def _refresh(self) -> None:
        self._listed_at = self.clock()
        for shard_id in readable(self.kinesis.shards(), self.positions.finished):
            if shard_id not in self._readers:
                after = self.positions.after.get(shard_id)
                self._readers[shard_id] = _Reader(shard_id, self.kinesis.iterator(shard_id, after))
                logger.info("archive: reading shard %s after %s", shard_id, after or "its start")

    def _poll(self) -> bool:
        """One read of every open shard; True when a shard gave a full page (more is waiting)."""
        behind = False
        for reader in list(self._readers.values()):
            if reader.is_ended:
                continue
            answer = self.kinesis.records(reader.iterator)
            if answer is None:  # expired: open again where the buffer ends
                reader.iterator = self.kinesis.iterator(
                    reader.shard_id, reader.read_to or self.positions.after.get(reader.shard_id))
                continue
            records, next_iterator = answer
            for record in records:
                for _, data in user_records(bytes(record["Data"])):
                    self._add(data)
                reader.read_to = str(record["SequenceNumber"])
            behind = behind or len(records) >= GET_RECORDS_LIMIT
            if next_iterator is None:
                reader.is_ended = True
                logger.info("archive: shard %s read to its end", reader.shard_id)
            else:
                reader.iterator = next_iterator
        return behind

    def _add(self, line: bytes) -> None:
        # A producer record is one line already; a record another client wrote may lack the newline, and would
        # then run into the next line of the object.
        if not line.endswith(b"\n"):
            line += b"\n"
        if self._buffer_since is None:
            self._buffer_since = self.clock()
        self._buffer.append(line)
        self._buffered += len(line)

    def _is_due(self) -> bool:
        if any(reader.is_ended for reader in self._readers.values()):
            return True
        if not self._buffer or self._buffer_since is None:
            return False
        return self._buffered >= self.buffer_bytes or self.clock() - self._buffer_since >= self.buffer_seconds

    def flush(self) -> None:
        """Deliver the buffer, then move every shard's saved position past what it held."""
        if self._buffer:
            self.sink.deliver(self._buffer)
            self.stats.records += len(self._buffer)
            self.stats.flushes += 1
            self.stats.objects = self.sink.objects
        moved = False
        for reader in list(self._readers.values()):
            if reader.read_to is not None and self.positions.after.get(reader.shard_id) != reader.read_to:
                self.positions.after[reader.shard_id] = reader.read_to
                moved = True
            if reader.is_ended:
                self.positions.finished.add(reader.shard_id)
                del self._readers[reader.shard_id]
                self._listed_at = None  # its children may be readable now
                moved = True
        if moved:
            self.positions.save()
        self._buffer, self._buffered, self._buffer_since = [], 0, None
