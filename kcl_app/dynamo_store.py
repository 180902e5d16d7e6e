"""DynamoDB adapter for the events table. Writes are idempotent overwrites keyed by the de-duplication key."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from kcl_app.handler import ProcessedChange
from wikitide import retry
from wikitide.errors import DependencyUnavailable

logger = logging.getLogger(__name__)

BATCH_LIMIT = 25  # BatchWriteItem's own limit


class _Unprocessed(Exception):
    """Some items came back unprocessed (throttling); retried with backoff."""


class DynamoEventStore:
    """Stores each change as one item. The item is a pure function of the change, so writing a change
    again (a KCL redelivery) rewrites identical content: one item per key, no matter how often."""

    def __init__(self, client: Any, table: str, *, attempts: int = 6, fast_retries: bool = False) -> None:
        self._client = client
        self._table = table
        self._attempts = attempts
        self._fast = fast_retries

    def put_changes(self, changes: Sequence[ProcessedChange]) -> None:
        for start in range(0, len(changes), BATCH_LIMIT):
            requests = [{"PutRequest": {"Item": to_item(c)}} for c in changes[start : start + BATCH_LIMIT]]
            self._write(requests)

    def _write(self, requests: list[dict[str, Any]]) -> None:
        pending = {self._table: requests}

        def attempt() -> None:
            nonlocal pending
            try:
                response = self._client.batch_write_item(RequestItems=pending)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code in ("ResourceNotFoundException", "ValidationException", "AccessDeniedException"):
                    raise DependencyUnavailable(f"DynamoDB rejected the write to {self._table}: {code}") from exc
                raise _Unprocessed(code) from exc
            except BotoCoreError as exc:
                raise _Unprocessed(str(exc)) from exc
            left = response.get("UnprocessedItems") or {}
            if left:
                pending = left
                raise _Unprocessed(f"{len(left.get(self._table, []))} unprocessed items")

        try:
            retry.bounded(attempt, retry_on=(_Unprocessed,), attempts=self._attempts, fast=self._fast)
        except _Unprocessed as exc:
            raise DependencyUnavailable(f"DynamoDB write to {self._table} failed after retries: {exc}") from exc


def to_item(change: ProcessedChange) -> dict[str, Any]:
    doc = change.doc
    return {
        "pk": {"S": change.key},
        "wiki": {"S": doc["wiki"]},
        "type": {"S": doc["type"]},
        "dt": {"S": doc["dt"]},
        "title": {"S": doc["title"]},
        "doc": {"S": json.dumps(doc, ensure_ascii=False, sort_keys=True)},
    }
