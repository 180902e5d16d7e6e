"""DynamoDB adapter for the producer's resume position: the SSE `id:` of the last event known to be in Kinesis.

Saved only after the PutRecords that carried that event succeeded, so resuming from it can repeat events
(the consumer absorbs duplicates) but never skips one.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from wikitide import aws

logger = logging.getLogger(__name__)


class PositionStore:
    def __init__(self, client: Any, table: str, source: str, *, fast_retries: bool = False) -> None:
        self._client = client
        self._table = table
        self._source = source
        self._fast = fast_retries
        self._saved: str | None = None

    def load(self) -> str | None:
        key = {"source": {"S": self._source}}
        response = self._call(lambda: self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True))
        item = response.get("Item")
        self._saved = item["last_event_id"]["S"] if item else None
        return self._saved

    def save(self, last_event_id: str | None) -> None:
        if last_event_id is None or last_event_id == self._saved:
            return
        item = {
            "source": {"S": self._source},
            "last_event_id": {"S": last_event_id},
            "saved_at": {"N": str(int(time.time()))},
        }
        self._call(lambda: self._client.put_item(TableName=self._table, Item=item))
        self._saved = last_event_id

    def _call(self, operation: Any) -> Any:
        return aws.call(operation, what=f"DynamoDB {self._table}", fast=self._fast)
