"""Kinesis adapters: PutRecords (AWS), or PutRecord calls side by side (kinesis-mock); both keep each page's order
and retry only what failed, with bounded backoff.

Why two: kinesis-mock (the Kinesis of the local stack and of LocalStack) hashes every record a shard already holds
for every entry of a `PutRecords` call, so that call slows down as the stream grows (about 1.3 M / n records/s:
the live rate no longer fits after ~45,000 records, `../shared/docs/LOCAL_STACK_FINDINGS.md`). Its `PutRecord`
appends without that cost. On AWS, `PutRecords` is the right call: one request for up to 500 records.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from producer.batcher import Entry, split_rounds
from wikitide import aws, retry

logger = logging.getLogger(__name__)

PutApi = Literal["records", "record"]
PUT_APIS: tuple[PutApi, ...] = ("records", "record")
RECORD_LANES = 8  # PutRecord calls in flight: kinesis-mock answers one at a time, the rest hides the round trip


class KinesisWriter:
    """PutRecords: up to 500 entries a call."""

    def __init__(
        self, client: Any, stream_name: str, *, attempts: int | None = None, fast_retries: bool = False
    ) -> None:
        self._client = client
        self._stream = stream_name
        self._attempts = attempts
        self._fast = fast_retries

    def put(self, entries: Sequence[Entry]) -> None:
        """Write all entries, keeping each page's order, or raise DependencyUnavailable.

        Each call carries at most one entry per page (`split_rounds`) and only its failed entries are sent
        again, so a page's later change is written only after its earlier one was accepted.
        """
        for round_entries in split_rounds(entries):
            self._put_round(round_entries)

    def close(self) -> None:
        """Nothing held."""

    def _put_round(self, entries: Sequence[Entry]) -> None:
        pending = list(entries)

        def attempt() -> None:
            nonlocal pending
            response = self._client.put_records(
                StreamName=self._stream,
                Records=[{"Data": e.data, "PartitionKey": e.partition_key} for e in pending],
            )
            if response.get("FailedRecordCount", 0):
                results = response["Records"]
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
        fast_retries: bool = False,
    ) -> None:
        self._client = client
        self._stream = stream_name
        self._attempts = attempts
        self._fast = fast_retries
        self._pool = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="put-record")

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
            self._client.put_record(StreamName=self._stream, Data=entry.data, PartitionKey=entry.partition_key)

        what = f"PutRecord to {self._stream}"
        aws.call(attempt, what=what, policy=retry.PRODUCER_KINESIS_RECORD, attempts=self._attempts, fast=self._fast)


def make_writer(
    client: Any, stream_name: str, put_api: PutApi, *, fast_retries: bool = False
) -> KinesisWriter | KinesisRecordWriter:
    if put_api == "record":
        return KinesisRecordWriter(client, stream_name, fast_retries=fast_retries)
    return KinesisWriter(client, stream_name, fast_retries=fast_retries)
