"""`StatsStore` over the DynamoDB counters table: how the API answers while Redis is empty or down.

Reads the same counter cells the Redis read model is built from (laid out in `wikitide.cells`): one range
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

from wikitide import cells
from wikitide.errors import DependencyUnavailable

T = TypeVar("T")


class DynamoStats:
    def __init__(self, client: Any, table: str, *, parallel: int = 8) -> None:
        self._client = client
        self._table = table
        self._executor = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="stats-dynamodb")

    def latest_minute(self) -> int | None:
        with _translated("reading the latest minute"):
            item = self._client.get_item(TableName=self._table, Key=cells.LATEST_KEY).get("Item")
        return None if item is None else int(item[cells.LATEST_MINUTE]["N"])

    def minute_counts(self, minutes: Sequence[int], wiki: str | None) -> list[Mapping[str, str | int]]:
        if not minutes:
            return []
        scope = cells.TOTAL if wiki is None else cells.wiki_scope(wiki)
        by_minute: dict[int, Counter[str]] = {minute: Counter() for minute in minutes}
        first, last = cells.window_bounds(min(minutes), max(minutes))
        for item in self._query(
            TableName=self._table,
            KeyConditionExpression="pk = :scope AND sk BETWEEN :first AND :last",
            ExpressionAttributeValues={":scope": {"S": scope}, ":first": {"S": first}, ":last": {"S": last}},
        ):
            minute, _ = cells.split_sort_key(item["sk"]["S"])
            if minute in by_minute:
                by_minute[minute].update(cells.counters(item))
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
        condition = "#minute = :minute"
        values: dict[str, Any] = {":minute": {"N": str(minute)}}
        if wiki is not None:
            condition += " AND begins_with(pk, :prefix)"
            values[":prefix"] = {"S": cells.page_prefix(wiki)}
        pages: Counter[str] = Counter()
        for item in self._query(TableName=self._table, IndexName=cells.PAGES_INDEX, KeyConditionExpression=condition,
                                ExpressionAttributeNames={"#minute": cells.PAGE_MINUTE},
                                ExpressionAttributeValues=values):
            pages[cells.page_of(item["pk"]["S"])] += int(item[cells.PAGE_EVENTS]["N"])
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
        raise DependencyUnavailable(f"dynamodb: {action} failed") from exc
