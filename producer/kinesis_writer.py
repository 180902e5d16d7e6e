"""Kinesis adapter: PutRecords, retrying exactly the entries that failed, with bounded backoff."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from producer.batcher import Entry, split_rounds
from wikitide import aws, retry

logger = logging.getLogger(__name__)


class KinesisWriter:
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
