"""The producer's control item and saved positions in `ProducerStateTable`, shared by the producer (which obeys
the pause flag) and the API's control endpoints (which set it and show the positions).

The table holds one item per `--source` (`producer.positions.PositionStore` writes them) and this module's control
item under the key `CONTROL_KEY`, which no source can be (a source is `live`, `synthetic`, `sse:URL` or
`replay:PATH`). The pause flag applies to every producer of the stack. A producer reads it every
`POLL_SECONDS`, so it obeys within that and one chunk of its stream (see `producer.sse_source.read_events`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from wikitide import aws

CONTROL_KEY = "#control"
POLL_SECONDS = 2.0
# Attributes of a saved position stored as JSON text.
_JSON_FIELDS = ("partitions", "last_gap", "rejected")


def plain_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item of the producer table as plain values (numbers, text, booleans; JSON fields decoded)."""
    plain: dict[str, Any] = {}
    for name, value in item.items():
        if "N" in value:
            plain[name] = int(value["N"])
        elif "BOOL" in value:
            plain[name] = value["BOOL"]
        else:
            plain[name] = value.get("S")
    for name in _JSON_FIELDS:
        if isinstance(plain.get(name), str):
            plain[name] = json.loads(plain[name])
    return plain


class ProducerControl:
    """Reads and writes the control item; every call goes through `wikitide.aws.call` (a client made with
    `make_adapter_client`). Raises `DependencyUnavailable`."""

    def __init__(self, client: Any, table: str, *, fast_retries: bool = False) -> None:
        self._client = client
        self._table = table
        self._fast = fast_retries

    def state(self) -> dict[str, Any]:
        """`{"paused": bool, "changed_at": epoch seconds, "changed_by": who}` (`paused` False when never set)."""
        key = {"source": {"S": CONTROL_KEY}}
        item = self._call(lambda: self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True))
        found = plain_item(item.get("Item") or {})
        return {"paused": bool(found.get("paused", False)), "changed_at": found.get("changed_at"),
                "changed_by": found.get("changed_by")}

    def is_paused(self) -> bool:
        return bool(self.state()["paused"])

    def set_paused(self, paused: bool, by: str) -> None:
        item = {"source": {"S": CONTROL_KEY}, "paused": {"BOOL": paused}, "changed_at": {"N": str(int(time.time()))},
                "changed_by": {"S": by[:200] or "-"}}
        self._call(lambda: self._client.put_item(TableName=self._table, Item=item))

    def positions(self) -> list[dict[str, Any]]:
        """Every saved producer position (one per source), as `wikitide producer-status` shows one."""
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self._table}
        # One item per source the stack's producers ever ran with: a handful of pages at most.
        for _ in range(100):
            page = self._call(lambda: self._client.scan(**kwargs))
            found.extend(plain_item(item) for item in page.get("Items", []) if item["source"]["S"] != CONTROL_KEY)
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(found, key=lambda item: str(item.get("source")))

    def _call(self, operation: Any) -> Any:
        return aws.call(operation, what=f"DynamoDB {self._table}", fast=self._fast)
