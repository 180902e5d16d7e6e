"""`EditStore` over a boto3 DynamoDB client: one `GetItem` on the events table by its dedup key, or one `Query` of
a page's changes, newest first, on the events table's page index (`wikitide.event_index`)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from wikitide import event_index
from wikitide.errors import DependencyUnavailable
from wikitide.events import revision_key
from wikitide.keys import page_member


class DynamoEdits:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def get_edit(self, wiki: str, rev_id: int) -> dict[str, Any] | None:
        return self._doc(self._table, revision_key(wiki, rev_id), f"{wiki} revision {rev_id}")

    def latest_change(self, wiki: str, title: str) -> dict[str, Any] | None:
        newest = self.page_changes(wiki, title, 1)
        return newest[0] if newest else None

    def page_changes(self, wiki: str, title: str, limit: int) -> list[dict[str, Any]]:
        try:
            response = self._client.query(
                TableName=self._table, IndexName=event_index.PAGE_INDEX, KeyConditionExpression="#page = :page",
                ExpressionAttributeNames={"#page": event_index.PAGE},
                ExpressionAttributeValues={":page": {"S": page_member(wiki, title)}},
                ScanIndexForward=False, Limit=limit,
            )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable(f"dynamodb: reading the changes of {wiki}:{title} failed") from exc
        return [json.loads(item[event_index.DOC]["S"]) for item in response.get("Items", [])
                if event_index.DOC in item]

    def _doc(self, table: str, key: str, what: str) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(TableName=table, Key={"pk": {"S": key}}, ProjectionExpression="doc")
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable(f"dynamodb: reading {what} failed") from exc
        item = response.get("Item")
        if item is None or "doc" not in item:
            return None
        doc: dict[str, Any] = json.loads(item["doc"]["S"])
        return doc
