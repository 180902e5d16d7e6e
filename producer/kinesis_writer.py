"""Kinesis adapters: PutRecords (AWS), or PutRecord calls side by side (kinesis-mock); both keep each page's order
and retry only what failed, with bounded backoff.

Why two: kinesis-mock (the Kinesis of the local stack and of LocalStack) hashes every record a shard already holds
for every entry of a `PutRecords` call, so that call slows down as the stream grows (about 1.3 M / n records/s:
the live rate no longer fits after ~45,000 records, `../shared/docs/LOCAL_STACK_FINDINGS.md`). Its `PutRecord`
appends without that cost. On AWS, `PutRecords` is the right call: one request for up to 500 records.

Above either, `AggregatingWriter` packs the events bound for one shard into one aggregated record
(`wikitide.aggregation`), so a call carries a few records whatever the number of events.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from producer.batcher import MAX_BATCH_RECORDS, Entry, split_rounds
from wikitide import aggregation, aws, retry
from wikitide.errors import DependencyUnavailable, RequestRefused
from wikitide.metrics import NULL_METRICS, Metrics

logger = logging.getLogger(__name__)

PutApi = Literal["records", "record", "auto"]
RECORD_LANES = 8  # PutRecord calls in flight: kinesis-mock answers one at a time, the rest hides the round trip
# Rounds of the lanes in one producer call: its durable position moves once per call, and a PutRecord on a
# loaded kinesis-mock took 2 s (8 lanes, 267 ms an entry, in a CI run): a 500-entry call held the position for
# over two minutes, so a producer killed meanwhile would send all of it again. A few rounds keep the lanes busy.
RECORD_ROUNDS_PER_CALL = 4
THROTTLED = "ProvisionedThroughputExceededException"


def _timed_call(metrics: Metrics, name: str, send: Callable[[], Any]) -> Any:
    """One Kinesis call, its latency observed as `name`; a throttled call counts one `PutThrottles`."""
    started = time.monotonic()
    try:
        return send()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in (THROTTLED, "ThrottlingException"):
            metrics.count("PutThrottles")
        raise
    finally:
        metrics.observe(name, 1000 * (time.monotonic() - started))


class KinesisWriter:
    """PutRecords: up to 500 entries a call."""

    def __init__(
        self, client: Any, stream_name: str, *, attempts: int | None = None, fast_retries: bool = False,
        metrics: Metrics = NULL_METRICS,
    ) -> None:
        self._client = client
        self._stream = stream_name
        self._attempts = attempts
        self._fast = fast_retries
        self._metrics = metrics
        metrics.count("PutThrottles", 0)

    def put(self, entries: Sequence[Entry]) -> list[str]:
        """Write all entries, keeping each page's order, or raise DependencyUnavailable. Returns the shard each
        entry was written to, in `entries`' order.

        Each call carries at most one entry per page (`split_rounds`) and only its failed entries are sent
        again, so a page's later change is written only after its earlier one was accepted.
        """
        shards: dict[int, str] = {}
        for round_entries in split_rounds(entries):
            for entry, shard in zip(round_entries, self._put_round(round_entries), strict=True):
                shards[id(entry)] = shard
        return [shards[id(entry)] for entry in entries]

    max_call_entries = MAX_BATCH_RECORDS

    def close(self) -> None:
        """Nothing held."""

    def _put_round(self, entries: Sequence[Entry]) -> list[str]:
        pending = list(range(len(entries)))
        shards = [""] * len(entries)

        def attempt() -> None:
            nonlocal pending
            records = [{"Data": entries[i].data, "PartitionKey": entries[i].partition_key} for i in pending]
            response = _timed_call(self._metrics, "PutRecordsLatency",
                                   lambda: self._client.put_records(StreamName=self._stream, Records=records))
            results = response["Records"]
            for i, result in zip(pending, results, strict=True):
                if "ErrorCode" not in result:
                    shards[i] = result["ShardId"]
            if response.get("FailedRecordCount", 0):
                self._metrics.count("PutThrottles", sum(r.get("ErrorCode") == THROTTLED for r in results))
                pending = [e for e, r in zip(pending, results, strict=True) if "ErrorCode" in r]
                logger.info("PutRecords: %d of %d entries failed, retrying them", len(pending), len(results))
                codes = sorted({r["ErrorCode"] for r in results if "ErrorCode" in r})
                raise aws.Retryable(f"{len(pending)} failed entries ({', '.join(codes)})")

        what = f"PutRecords to {self._stream}"
        aws.call(attempt, what=what, policy=retry.PRODUCER_KINESIS, attempts=self._attempts, fast=self._fast)
        return shards


class KinesisRecordWriter:
    """PutRecord, `lanes` calls at a time (for kinesis-mock). Entries of one round belong to different pages, so
    running them side by side cannot reorder a page; the next round starts when the whole round is written."""

    def __init__(
        self, client: Any, stream_name: str, *, lanes: int = RECORD_LANES, attempts: int | None = None,
        fast_retries: bool = False, metrics: Metrics = NULL_METRICS,
    ) -> None:
        self._client = client
        self._stream = stream_name
        self._attempts = attempts
        self._fast = fast_retries
        self._metrics = metrics
        metrics.count("PutThrottles", 0)
        self._pool = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="put-record")
        self.max_call_entries = RECORD_ROUNDS_PER_CALL * lanes

    def put(self, entries: Sequence[Entry]) -> list[str]:
        """Write all entries, keeping each page's order, or raise DependencyUnavailable (after every call of the
        round has ended: none is left running behind the caller). Returns the shard of each entry, in order."""
        shards: dict[int, str] = {}
        for round_entries in split_rounds(entries):
            futures = [self._pool.submit(self._put_one, entry) for entry in round_entries]
            errors = [error for future in futures if (error := future.exception()) is not None]
            if errors:
                raise errors[0]
            for entry, future in zip(round_entries, futures, strict=True):
                shards[id(entry)] = future.result()
        return [shards[id(entry)] for entry in entries]

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _put_one(self, entry: Entry) -> str:
        def attempt() -> str:
            response = _timed_call(self._metrics, "PutRecordLatency", lambda: self._client.put_record(
                StreamName=self._stream, Data=entry.data, PartitionKey=entry.partition_key))
            return str(response["ShardId"])

        what = f"PutRecord to {self._stream}"
        return aws.call(attempt, what=what, policy=retry.PRODUCER_KINESIS_RECORD, attempts=self._attempts,
                        fast=self._fast)


class AdaptiveKinesisWriter:
    """PutRecords while it is the cheaper call per entry, PutRecord lanes once they are (for kinesis-mock).

    On a fresh kinesis-mock stream PutRecords is faster (one round trip for many entries: sent -> Kinesis p50
    253 ms against 549 ms at 30 events/s, measured); its cost per entry then grows with the records a shard
    holds, while PutRecord's stays flat. The writer keeps a moving average of the seconds per entry of each
    path, uses the cheaper one and times the other on its second call and then one call in `PROBE_EVERY`, so it
    moves to PutRecord when the stream has grown enough, on whatever machine, and a restarted producer finds out
    at once. A PutRecords that fails under its retries (on a long kinesis-mock stream a 500-entry call can outlast
    the read timeout on a busy machine) is not the end: its entries go through the PutRecord lanes, and PutRecords
    is charged the time it took. Without that, a restarted producer retried the same call and died again (15
    restarts in 17 minutes in one loaded test run; a call that timed out may still have been carried out, and the
    longer stream made the next one slower)."""

    PROBE_EVERY = 50
    WEIGHT = 0.3  # of the newest call in the moving averages

    def __init__(self, batch: KinesisWriter, lanes: KinesisRecordWriter,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._writers: dict[str, KinesisWriter | KinesisRecordWriter] = {"records": batch, "record": lanes}
        self._per_entry: dict[str, float | None] = {"records": None, "record": None}
        self._clock = clock
        self._calls = 0

    @property
    def max_call_entries(self) -> int:
        """The lanes' call size, on both paths: a PutRecords that fails goes through the lanes, so it must be a call
        they finish quickly. In a loaded CI run a 500-entry PutRecords timed out under its retries (45 s) and its
        fallback then took the lanes over two minutes, with the producer's position held all that time. On
        kinesis-mock the per-entry cost dominates a PutRecords (it grows with the stream), so smaller calls cost
        little: a 10-entry call took 93 ms where 500 took 2.0 s, at 5,100 records stored."""
        return self._writers["record"].max_call_entries

    @property
    def current(self) -> str:
        """The path the next call takes when it is not a probe."""
        batch, lanes = self._per_entry["records"], self._per_entry["record"]
        return "record" if batch is not None and lanes is not None and lanes < batch else "records"

    def put(self, entries: Sequence[Entry]) -> list[str]:
        """Write all entries (each page's order kept), or raise DependencyUnavailable when the PutRecord lanes
        fail too; the shard of each entry, in order. Entries of a PutRecords that failed part-way may be written
        twice: the processors keep one."""
        self._calls += 1
        before = self.current
        other = "record" if before == "records" else "records"
        probe = self._calls % self.PROBE_EVERY == 0 or (self._calls == 2 and self._per_entry[other] is None)
        chosen = other if probe else before
        started = self._clock()
        try:
            shards = self._writers[chosen].put(entries)
        except RequestRefused:
            raise  # permanent: the other call would be refused as well
        except DependencyUnavailable as exc:
            if chosen != "records":
                raise
            self._charge("records", started, entries)
            logger.warning("Kinesis writes: PutRecords failed (%s); its %d entries go through PutRecord", exc,
                           len(entries))
            chosen, started = "record", self._clock()
            shards = self._writers["record"].put(entries)
        self._charge(chosen, started, entries)
        if self.current != before:
            logger.info("Kinesis writes: %s now, at %.1f ms per entry against %.1f ms", self.current,
                        1000 * (self._per_entry[self.current] or 0), 1000 * (self._per_entry[before] or 0))
        return shards

    def _charge(self, path: str, started: float, entries: Sequence[Entry]) -> None:
        if entries:
            cost = (self._clock() - started) / len(entries)
            average = self._per_entry[path]
            self._per_entry[path] = cost if average is None else average + self.WEIGHT * (cost - average)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()


@dataclass(frozen=True, slots=True)
class _Range:
    shard_id: str
    low: int
    high: int


class ShardMap:
    """The stream's shards and the hash key range of each (ListShards): which open shard a partition key goes to,
    and whether a shard's range holds a set of hash keys. A shard's range never changes, so only the set of open
    shards can be out of date (after a reshard), and `refresh` brings it up to date."""

    def __init__(self, client: Any, stream_name: str, *, attempts: int | None = None, fast_retries: bool = False
                 ) -> None:
        self._client = client
        self._stream = stream_name
        self._attempts = attempts
        self._fast = fast_retries
        self._open: list[_Range] = []  # by starting hash key
        self._ranges: dict[str, _Range] = {}

    def refresh(self) -> None:
        """Read the shards again; DependencyUnavailable past the retry policy."""

        def attempt() -> list[dict[str, Any]]:
            shards: list[dict[str, Any]] = []
            response = self._client.list_shards(StreamName=self._stream)
            shards.extend(response["Shards"])
            while response.get("NextToken"):
                response = self._client.list_shards(NextToken=response["NextToken"])
                shards.extend(response["Shards"])
            return shards

        listed = aws.call(attempt, what=f"ListShards of {self._stream}", policy=retry.PRODUCER_KINESIS_SHARDS,
                          attempts=self._attempts, fast=self._fast)
        opened = []
        for shard in listed:
            keys = shard["HashKeyRange"]
            found = _Range(shard["ShardId"], int(keys["StartingHashKey"]), int(keys["EndingHashKey"]))
            self._ranges[found.shard_id] = found
            if "EndingSequenceNumber" not in shard.get("SequenceNumberRange", {}):
                opened.append(found)
        self._open = sorted(opened, key=lambda r: r.low)

    def shard_of(self, partition_key: str) -> str:
        """The open shard a record with this partition key goes to, as far as the map knows ("" when none)."""
        if not self._open:
            self.refresh()
        point = aggregation.hash_key(partition_key)
        index = bisect.bisect_right([r.low for r in self._open], point) - 1
        return self._open[index].shard_id if index >= 0 and point <= self._open[index].high else ""

    def holds(self, shard_id: str, partition_keys: Sequence[str]) -> bool:
        """Whether every one of these partition keys hashes into `shard_id`'s range (a shard not yet in the map is
        looked up first)."""
        if shard_id not in self._ranges:
            self.refresh()
        found = self._ranges.get(shard_id)
        return found is not None and all(found.low <= aggregation.hash_key(k) <= found.high for k in partition_keys)


class AggregatingWriter:
    """Packs the entries bound for one shard into aggregated records (`wikitide.aggregation`) and writes those
    through `inner`: one Kinesis record for many events.

    The KCL drops an aggregate whose user records do not all hash into the shard that received it, so each
    aggregate holds the entries that the shard map puts on one shard, and goes to that shard by the partition key
    of its first entry. After a reshard the map can be out of date: an aggregate can then land on a shard whose
    range misses some of its entries. The answer says which shard took each record; for such an aggregate the map
    is read again and its entries are written once more, each as a record of its own, in the same round (before
    any later change of their pages). A copy that lands on the same shard as its original (when the KCL did not
    drop the aggregate after all) is a duplicate the processors keep out: every copy of an entry is still on the
    shard its partition key hashes to, which is what the processors' de-duplication relies on
    (`kcl_app.dynamo_store.DynamoEventStore.claim`). An entry alone in its group, or too large to share a
    record, is written as it is."""

    max_call_entries = MAX_BATCH_RECORDS

    def __init__(self, inner: KinesisWriter | KinesisRecordWriter | AdaptiveKinesisWriter, shards: ShardMap,
                 *, max_bytes: int = aggregation.MAX_AGGREGATE_BYTES, metrics: Metrics = NULL_METRICS) -> None:
        self._inner = inner
        self._shards = shards
        self._max_bytes = max_bytes
        self._metrics = metrics
        metrics.count("EventsRewritten", 0)

    def put(self, entries: Sequence[Entry]) -> list[str]:
        """Write all entries, each page's order kept, or raise DependencyUnavailable; the shard of each entry."""
        written: dict[int, str] = {}
        for round_entries in split_rounds(entries):
            self._put_round(round_entries, written)
        return [written[id(entry)] for entry in entries]

    def _put_round(self, entries: Sequence[Entry], written: dict[int, str]) -> None:
        groups: dict[str, list[Entry]] = {}
        for entry in entries:
            groups.setdefault(self._shards.shard_of(entry.partition_key), []).append(entry)
        packed = [pack for group in groups.values() for pack in self._pack(group)]
        records = [record for record, _ in packed]
        strays: list[Entry] = []
        for (_, members), shard in zip(packed, self._inner.put(records), strict=True):
            for member in members:
                written[id(member)] = shard
            if len(members) > 1 and not self._shards.holds(shard, [m.partition_key for m in members]):
                strays.extend(members)
        if strays:
            self._metrics.count("EventsRewritten", len(strays))
            logger.warning("Kinesis writes: %d events landed in aggregates on a shard outside their hash keys' "
                           "(the stream was resharded); writing them again one record each", len(strays))
            self._shards.refresh()
            for member, shard in zip(strays, self._inner.put(strays), strict=True):
                written[id(member)] = shard

    def _pack(self, group: Sequence[Entry]) -> list[tuple[Entry, list[Entry]]]:
        """The records for one shard's entries: (record, the entries it carries)."""
        packs: list[tuple[Entry, list[Entry]]] = []
        current, members = aggregation.Aggregate(self._max_bytes), []

        def close() -> None:
            if len(members) == 1:
                packs.append((members[0], list(members)))
            elif members:
                partition_key, data = current.record()
                packs.append((Entry(data, partition_key), list(members)))

        for entry in group:
            if current.add(entry.partition_key, entry.data):
                members.append(entry)
                continue
            close()
            current, members = aggregation.Aggregate(self._max_bytes), []
            if current.add(entry.partition_key, entry.data):
                members.append(entry)
            else:  # too large for an aggregate of its own
                packs.append((entry, [entry]))
        close()
        return packs

    def close(self) -> None:
        self._inner.close()


def put_api_of(setting: str) -> PutApi:
    """The write path a `WIKITIDE_KINESIS_PUT` value names (`Settings.kinesis_put`); anything else is `records`."""
    return "record" if setting == "record" else "auto" if setting == "auto" else "records"


Writer = KinesisWriter | KinesisRecordWriter | AdaptiveKinesisWriter | AggregatingWriter


def make_writer(
    client: Any, stream_name: str, put_api: PutApi, *, aggregate: bool = True, fast_retries: bool = False,
    metrics: Metrics = NULL_METRICS,
) -> Writer:
    """The writer for `put_api` (`WIKITIDE_KINESIS_PUT`), packing events into aggregated records unless `aggregate`
    is off (`WIKITIDE_KINESIS_AGGREGATE`): the producer, `wikitide backfill` and `wikitide archive replay` all
    write through it. Close it when done (the PutRecord lanes hold threads). `metrics` receives each call's latency
    (PutRecordsLatency or PutRecordLatency, ms), PutThrottles (throttled calls and entries) and
    EventsRewritten (events written again after their aggregate landed on the wrong shard)."""
    inner: KinesisWriter | KinesisRecordWriter | AdaptiveKinesisWriter
    if put_api == "record":
        inner = KinesisRecordWriter(client, stream_name, fast_retries=fast_retries, metrics=metrics)
    elif put_api == "auto":
        inner = AdaptiveKinesisWriter(
            KinesisWriter(client, stream_name, fast_retries=fast_retries, metrics=metrics),
            KinesisRecordWriter(client, stream_name, fast_retries=fast_retries, metrics=metrics))
    else:
        inner = KinesisWriter(client, stream_name, fast_retries=fast_retries, metrics=metrics)
    if not aggregate:
        return inner
    return AggregatingWriter(inner, ShardMap(client, stream_name, fast_retries=fast_retries), metrics=metrics)
