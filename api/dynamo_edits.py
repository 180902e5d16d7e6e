"""`EditStore` over a boto3 DynamoDB client: the events table (layout: `wikitide.event_items`), one `GetItem` by a
change's de-duplication key, or one Query of the by-page index and one `GetItem` for a page's latest change."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from wikitide import event_items as items
from wikitide.errors import DependencyUnavailable
from wikitide.events import page_key, revision_key


class DynamoEdits:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def get_edit(self, wiki: str, rev_id: int) -> dict[str, Any] | None:
        return self._doc(revision_key(wiki, rev_id), f"{wiki} revision {rev_id}")

    def latest_change(self, wiki: str, title: str) -> dict[str, Any] | None:
        what = f"the latest change of {wiki}:{title}"
        try:
            response = self._client.query(
                TableName=self._table, IndexName=items.BY_PAGE_INDEX,
                KeyConditionExpression="#page = :page", ExpressionAttributeNames={"#page": items.PAGE},
                ExpressionAttributeValues={":page": {"S": page_key(wiki, title)}},
                ScanIndexForward=False, Limit=1,
            )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable(f"dynamodb: reading {what} failed") from exc
        newest = response.get("Items") or []
        return self._doc(newest[0][items.KEY]["S"], what) if newest else None

    def _doc(self, key: str, what: str) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={items.KEY: {"S": key}}, ProjectionExpression=items.DOC
            )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable(f"dynamodb: reading {what} failed") from exc
        item = response.get("Item")
        if item is None or items.DOC not in item:
            return None
        doc: dict[str, Any] = json.loads(item[items.DOC]["S"])
        return doc
