"""Kinesis adapter: PutRecords, retrying exactly the entries that failed, with bounded backoff."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from producer.batcher import Entry, split_rounds
from wikitide import retry
from wikitide.errors import DependencyUnavailable

logger = logging.getLogger(__name__)


class _SomeFailed(Exception):
    """Part of the batch (or all of it, when throttled) was not accepted; retried with backoff."""


class KinesisWriter:
    def __init__(self, client: Any, stream_name: str, *, attempts: int = 8, fast_retries: bool = False) -> None:
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
            try:
                response = self._client.put_records(
                    StreamName=self._stream,
                    Records=[{"Data": e.data, "PartitionKey": e.partition_key} for e in pending],
                )
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code in ("ResourceNotFoundException", "ValidationException", "AccessDeniedException"):
                    raise DependencyUnavailable(f"Kinesis rejected PutRecords on {self._stream}: {code}") from exc
                raise _SomeFailed(code) from exc
            except BotoCoreError as exc:
                raise _SomeFailed(str(exc)) from exc
            if response.get("FailedRecordCount", 0):
                results = response["Records"]
                failed = [e for e, r in zip(pending, results, strict=True) if "ErrorCode" in r]
                pending = failed
                logger.info("PutRecords: %d of %d entries failed, retrying them", len(failed), len(results))
                raise _SomeFailed(f"{len(failed)} failed entries")

        try:
            retry.bounded(attempt, retry_on=(_SomeFailed,), attempts=self._attempts, fast=self._fast)
        except _SomeFailed as exc:
            raise DependencyUnavailable(f"PutRecords to {self._stream} failed after retries: {exc}") from exc
