"""DynamoDB adapter for the events table. Writes are idempotent overwrites keyed by the de-duplication key."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from kcl_app.handler import ProcessedChange
from wikitide import aws

logger = logging.getLogger(__name__)

BATCH_LIMIT = 25  # BatchWriteItem's own limit


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
            left = self._client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if left:
                pending = left
                raise aws.Retryable(f"{len(left.get(self._table, []))} unprocessed items")

        aws.call(attempt, what=f"DynamoDB write to {self._table}", attempts=self._attempts, fast=self._fast)


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
