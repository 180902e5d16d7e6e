"""DynamoDB adapter for the producer's checkpoint: the SSE `id:` of the last frame behind which every event is
in Kinesis, the topic/partition offsets up to it, and the counters (one item per `--source` in
`ProducerStateTable`).

Saved only once every event up to that frame is in Kinesis (the frame itself may be one that was skipped or
rejected), so resuming from it can repeat events (the consumer absorbs duplicates) but never skips one.

Item attributes: `last_event_id` (S), `partitions` (S, JSON list of {topic, partition, offset, dt}), `gaps`
(N, gaps reported so far), `missed_offsets` (N, offsets those gaps missed), `last_gap` (S, JSON of the latest
gap), `rejected` (S, JSON of frames rejected so far by reason), `truncated` (N, events cut to fit a record so
far), `saved_at` (N, epoch seconds). The item stays small whatever the stream holds: `progress` bounds the
partitions and the reasons are our own few.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from producer.progress import Checkpoint, Gap
from wikitide import aws
from wikitide.producer_control import plain_item

logger = logging.getLogger(__name__)


class PositionStore:
    def __init__(self, client: Any, table: str, source: str, *, fast_retries: bool = False) -> None:
        self._client = client
        self._table = table
        self._source = source
        self._fast = fast_retries
        self._saved: Checkpoint | None = None

    def load(self) -> Checkpoint:
        key = {"source": {"S": self._source}}
        response = self._call(lambda: self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True))
        item = response.get("Item")
        self._saved = _checkpoint(item) if item else Checkpoint()
        return self._saved

    def load_item(self) -> dict[str, Any] | None:
        """The stored item as plain values, for people and monitoring (`wikitide producer-status`)."""
        key = {"source": {"S": self._source}}
        item = self._call(lambda: self._client.get_item(TableName=self._table, Key=key)).get("Item")
        if not item:
            return None
        return plain_item(item)

    def save(self, checkpoint: Checkpoint) -> None:
        if checkpoint.last_event_id is None or checkpoint == self._saved:
            return
        item = {
            "source": {"S": self._source},
            "last_event_id": {"S": checkpoint.last_event_id},
            "partitions": {"S": checkpoint.partitions_json()},
            "gaps": {"N": str(checkpoint.gaps)},
            "missed_offsets": {"N": str(checkpoint.missed)},
            "rejected": {"S": json.dumps(dict(sorted(checkpoint.rejected.items())), separators=(",", ":"))},
            "truncated": {"N": str(checkpoint.truncated)},
            "saved_at": {"N": str(int(time.time()))},
        }
        if checkpoint.last_gap is not None:
            item["last_gap"] = {"S": json.dumps(checkpoint.last_gap.to_json(), separators=(",", ":"))}
        self._call(lambda: self._client.put_item(TableName=self._table, Item=item))
        self._saved = checkpoint

    def _call(self, operation: Any) -> Any:
        return aws.call(operation, what=f"DynamoDB {self._table}", fast=self._fast)


def _checkpoint(item: dict[str, Any]) -> Checkpoint:
    """The checkpoint of a stored item; items written before partitions were tracked have only the id."""
    partitions = Checkpoint.partitions_from_json(item["partitions"]["S"]) if "partitions" in item else {}
    return Checkpoint(
        last_event_id=item["last_event_id"]["S"],
        partitions=partitions,
        gaps=int(item.get("gaps", {}).get("N", "0")),
        missed=int(item.get("missed_offsets", {}).get("N", "0")),
        last_gap=Gap.from_json(json.loads(item["last_gap"]["S"])) if "last_gap" in item else None,
        rejected=json.loads(item["rejected"]["S"]) if "rejected" in item else {},
        truncated=int(item.get("truncated", {}).get("N", "0")),
    )
