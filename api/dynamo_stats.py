"""`StatsStore` over the DynamoDB counters table: how the API answers while Redis is empty or down.

Reads the same counter cells the Redis read model is built from (see `kcl_app/dynamo_ledger.py`): one range
Query for the totals of a scope over a window (cells summed over shards), and one Query per minute on the
`pages-by-minute` index for the pages, run side by side. Slower than Redis, the same numbers. Recent edits
live only in Redis; this store has none to offer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from wikitide.errors import DependencyUnavailable

T = TypeVar("T")
PAGES_INDEX = "pages-by-minute"
LATEST_KEY = {"pk": {"S": "latest"}, "sk": {"S": "*"}}
# Attributes of a cell that are not counters.
NOT_COUNTS = frozenset({"pk", "sk", "seq", "expires_at", "page_minute"})


class DynamoStats:
    def __init__(self, client: Any, table: str, *, parallel: int = 8) -> None:
        self._client = client
        self._table = table
        self._executor = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="stats-dynamodb")

    def latest_minute(self) -> int | None:
        with _translated("reading the latest minute"):
            item = self._client.get_item(TableName=self._table, Key=LATEST_KEY).get("Item")
        return None if item is None else int(item["minute"]["N"])

    def minute_counts(self, minutes: Sequence[int], wiki: str | None) -> list[Mapping[str, str | int]]:
        if not minutes:
            return []
        scope = "*" if wiki is None else f"w:{wiki}"
        by_minute: dict[int, Counter[str]] = {minute: Counter() for minute in minutes}
        for item in self._query(
            TableName=self._table,
            KeyConditionExpression="pk = :scope AND sk BETWEEN :first AND :last",
            ExpressionAttributeValues={
                ":scope": {"S": scope},
                ":first": {"S": f"{min(minutes):010d}#"},
                ":last": {"S": f"{max(minutes):010d}#~"},
            },
        ):
            minute = int(item["sk"]["S"].partition("#")[0])
            if minute in by_minute:
                by_minute[minute].update(
                    {name: int(value["N"]) for name, value in item.items() if name not in NOT_COUNTS and "N" in value}
                )
        return [dict(by_minute[minute]) for minute in minutes]

    def page_scores(self, minutes: Sequence[int], wiki: str | None, limit: int) -> list[tuple[str, float]]:
        """Every page of the window (a superset of what the port asks for)."""
        counts = self.minute_counts(minutes, wiki)
        with_pages = [m for m, c in zip(minutes, counts, strict=True) if int(c.get("edit", 0)) + int(c.get("new", 0))]
        totals: Counter[str] = Counter()
        for pages in self._each(with_pages, lambda minute: self._pages_of(minute, wiki)):
            totals.update(pages)
        return [(page, float(edits)) for page, edits in totals.items()]

    def recent_edits(self, wiki: str | None, limit: int) -> list[dict[str, Any]]:
        return []

    def _pages_of(self, minute: int, wiki: str | None) -> Counter[str]:
        condition = "page_minute = :minute"
        values: dict[str, Any] = {":minute": {"N": str(minute)}}
        if wiki is not None:
            condition += " AND begins_with(pk, :prefix)"
            values[":prefix"] = {"S": f"p:{wiki}\t"}
        pages: Counter[str] = Counter()
        for item in self._query(TableName=self._table, IndexName=PAGES_INDEX, KeyConditionExpression=condition,
                                ExpressionAttributeValues=values):
            pages[item["pk"]["S"].removeprefix("p:")] += int(item["events"]["N"])
        return pages

    def _query(self, **request: Any) -> Iterator[dict[str, Any]]:
        with _translated("querying counters"):
            for page in self._client.get_paginator("query").paginate(**request):
                yield from page.get("Items", [])

    def _each(self, minutes: Sequence[int], read: Callable[[int], T]) -> list[T]:
        return list(self._executor.map(read, minutes))


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise DependencyUnavailable(f"dynamodb: {action} failed: {exc}") from exc
