"""Kinesis adapters: PutRecords (AWS), or PutRecord calls side by side (kinesis-mock); both keep each page's order
and retry only what failed, with bounded backoff.

Why two: kinesis-mock (the Kinesis of the local stack and of LocalStack) hashes every record a shard already holds
for every entry of a `PutRecords` call, so that call slows down as the stream grows (about 1.3 M / n records/s:
the live rate no longer fits after ~45,000 records, `../shared/docs/LOCAL_STACK_FINDINGS.md`). Its `PutRecord`
appends without that cost. On AWS, `PutRecords` is the right call: one request for up to 500 records.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from botocore.exceptions import ClientError

from producer.batcher import MAX_BATCH_RECORDS, Entry, split_rounds
from wikitide import aws, retry
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

    def put(self, entries: Sequence[Entry]) -> None:
        """Write all entries, keeping each page's order, or raise DependencyUnavailable.

        Each call carries at most one entry per page (`split_rounds`) and only its failed entries are sent
        again, so a page's later change is written only after its earlier one was accepted.
        """
        for round_entries in split_rounds(entries):
            self._put_round(round_entries)

    max_call_entries = MAX_BATCH_RECORDS

    def close(self) -> None:
        """Nothing held."""

    def _put_round(self, entries: Sequence[Entry]) -> None:
        pending = list(entries)

        def attempt() -> None:
            nonlocal pending
            records = [{"Data": e.data, "PartitionKey": e.partition_key} for e in pending]
            response = _timed_call(self._metrics, "PutRecordsLatency",
                                   lambda: self._client.put_records(StreamName=self._stream, Records=records))
            if response.get("FailedRecordCount", 0):
                results = response["Records"]
                self._metrics.count("PutThrottles", sum(r.get("ErrorCode") == THROTTLED for r in results))
                pending = [e for e, r in zip(pending, results, strict=True) if "ErrorCode" in r]
                logger.info("PutRecords: %d of %d entries failed, retrying them", len(pending), len(results))
                codes = sorted({r["ErrorCode"] for r in results if "ErrorCode" in r})
                raise aws.Retryable(f"{len(pending)} failed entries ({', '.join(codes)})")

        what = f"PutRecords to {self._stream}"
        aws.call(attempt, what=what, policy=retry.PRODUCER_KINESIS, attempts=self._attempts, fast=self._fast)


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

    def put(self, entries: Sequence[Entry]) -> None:
        """Write all entries, keeping each page's order, or raise DependencyUnavailable (after every call of the
        round has ended: none is left running behind the caller)."""
        for round_entries in split_rounds(entries):
            futures = [self._pool.submit(self._put_one, entry) for entry in round_entries]
            errors = [error for future in futures if (error := future.exception()) is not None]
            if errors:
                raise errors[0]

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _put_one(self, entry: Entry) -> None:
        def attempt() -> None:
            _timed_call(self._metrics, "PutRecordLatency", lambda: self._client.put_record(
                StreamName=self._stream, Data=entry.data, PartitionKey=entry.partition_key))

        what = f"PutRecord to {self._stream}"
        aws.call(attempt, what=what, policy=retry.PRODUCER_KINESIS_RECORD, attempts=self._attempts, fast=self._fast)


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

    def put(self, entries: Sequence[Entry]) -> None:
        """Write all entries (each page's order kept), or raise DependencyUnavailable when the PutRecord lanes
        fail too. Entries of a PutRecords that failed part-way may be written twice: the processors keep one."""
        self._calls += 1
        before = self.current
        other = "record" if before == "records" else "records"
        probe = self._calls % self.PROBE_EVERY == 0 or (self._calls == 2 and self._per_entry[other] is None)
        chosen = other if probe else before
        started = self._clock()
        try:
            self._writers[chosen].put(entries)
        except RequestRefused:
            raise  # permanent: the other call would be refused as well
        except DependencyUnavailable as exc:
            if chosen != "records":
                raise
            self._charge("records", started, entries)
            logger.warning("Kinesis writes: PutRecords failed (%s); its %d entries go through PutRecord", exc,
                           len(entries))
            chosen, started = "record", self._clock()
            self._writers["record"].put(entries)
        self._charge(chosen, started, entries)
        if self.current != before:
            logger.info("Kinesis writes: %s now, at %.1f ms per entry against %.1f ms", self.current,
                        1000 * (self._per_entry[self.current] or 0), 1000 * (self._per_entry[before] or 0))

    def _charge(self, path: str, started: float, entries: Sequence[Entry]) -> None:
        if entries:
            cost = (self._clock() - started) / len(entries)
            average = self._per_entry[path]
            self._per_entry[path] = cost if average is None else average + self.WEIGHT * (cost - average)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()


def put_api_of(setting: str) -> PutApi:
    """The write path a `WIKITIDE_KINESIS_PUT` value names (`Settings.kinesis_put`); anything else is `records`."""
    return "record" if setting == "record" else "auto" if setting == "auto" else "records"


def make_writer(
    client: Any, stream_name: str, put_api: PutApi, *, fast_retries: bool = False, metrics: Metrics = NULL_METRICS
) -> KinesisWriter | KinesisRecordWriter | AdaptiveKinesisWriter:
    """The writer for `put_api` (`WIKITIDE_KINESIS_PUT`): the producer, `wikitide backfill` and
    `wikitide archive replay` all write through it. Close it when done (the PutRecord lanes hold threads).
    `metrics` receives each call's latency (PutRecordsLatency or PutRecordLatency, ms) and PutThrottles
    (throttled calls and entries)."""
    if put_api == "record":
        return KinesisRecordWriter(client, stream_name, fast_retries=fast_retries, metrics=metrics)
    if put_api == "auto":
        return AdaptiveKinesisWriter(
            KinesisWriter(client, stream_name, fast_retries=fast_retries, metrics=metrics),
            KinesisRecordWriter(client, stream_name, fast_retries=fast_retries, metrics=metrics))
    return KinesisWriter(client, stream_name, fast_retries=fast_retries, metrics=metrics)
