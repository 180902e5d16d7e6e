"""`StatsStore` over DynamoDB: how the API answers while Redis is empty or down.

Reads what the Redis read model is built from: the counter cells (laid out in `wikitide.cells`), one range Query for
the totals of a scope over a window (cells summed over shards); and the stored changes (`wikitide.event_index`),
whose revisions are the page edits (`kcl_app/ledger.py`): one Query per minute of the time index for the pages of a
window, run side by side, and one Query of the page index for a page's counts. Slower than Redis, the same numbers.
The recent changes come from the same time index, newest first, within `MINUTE_QUERIES` per request. The wikis of a
window and the trending baselines have no index here: they answer from Redis only (a 503 meanwhile). Neither do the
top pages of a window with more than `PAGE_MINUTES` minutes of edits: those would read every stored change of the
window (a day of the live stream is ~1.8 M revisions, about 2 GB), so they wait for Redis as well.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from api.filters import ChangeFilter
from api.recent import Collector, Position, RecentPage
from wikitide import cells, event_index, keys
from wikitide.errors import DependencyUnavailable
from wikitide.events import is_revision_key

T = TypeVar("T")
# The recent changes go back a day (the windows' reach); one request reads at most this many minutes that hold
# changes (the minutes without any are skipped by their counter cells).
RETENTION_MINUTES = 1440
MINUTE_QUERIES = 30
# The most minutes of stored changes one top-pages answer reads (an hour of the live stream: ~75,000 documents).
PAGE_MINUTES = 60


class DynamoStats:
    def __init__(self, client: Any, table: str, *, events_table: str, parallel: int = 8) -> None:
        self._client = client
        self._table = table
        self._events_table = events_table
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
        if len(with_pages) > PAGE_MINUTES:
            raise DependencyUnavailable(f"redis: the top pages of more than {PAGE_MINUTES} minutes of edits are "
                                        "answered from Redis only, which is not ready")
        totals: Counter[str] = Counter()
        for pages in self._each(with_pages, lambda minute: self._pages_of(minute, wiki)):
            totals.update(pages)
        return [(page, float(edits)) for page, edits in totals.items()]

    def wiki_totals(self, first: int, last: int) -> dict[str, dict[str, int]]:
        raise DependencyUnavailable("redis: the wikis of a window are kept in Redis only, which is not ready")

    def hour_page_edits(self, members: Sequence[str], hours: Sequence[int]) -> dict[str, int]:
        raise DependencyUnavailable("redis: the trending baselines are kept in Redis only, which is not ready")

    def page_edits(self, wiki: str, title: str, spans: Sequence[tuple[int, int]]) -> list[int]:
        if not spans:
            return []
        first = event_index.first_order_of(min(s[0] for s in spans) * 60_000)
        # BETWEEN is inclusive; no order key equals the bare prefix of the next minute's first millisecond.
        last = event_index.first_order_of((max(s[1] for s in spans) + 1) * 60_000)
        by_minute: Counter[int] = Counter()
        for item in self._query(
            TableName=self._events_table, IndexName=event_index.PAGE_INDEX,
            KeyConditionExpression="#page = :page AND #order BETWEEN :first AND :last",
            ProjectionExpression="pk, #order",
            ExpressionAttributeNames={"#page": event_index.PAGE, "#order": event_index.ORDER},
            ExpressionAttributeValues={":page": {"S": keys.page_member(wiki, title)}, ":first": {"S": first},
                                       ":last": {"S": last}},
        ):
            if is_revision_key(item["pk"]["S"]):
                ms, _ = event_index.split_order_key(item[event_index.ORDER]["S"])
                by_minute[ms // 60_000] += 1
        return [sum(n for m, n in by_minute.items() if low <= m <= high) for low, high in spans]

    def recent(self, matches: ChangeFilter, after: Position | None, limit: int) -> RecentPage:
        latest = self.latest_minute()
        collector = Collector(matches, after, limit)
        if latest is None:
            return collector.page(None)
        start = latest if after is None else min(latest, after.ms // 60_000)
        previous = start
        minutes = self._minutes_with_events(start, latest - RETENTION_MINUTES + 1, matches.single_wiki)
        for read, minute in enumerate(minutes):
            if read == MINUTE_QUERIES:
                # Out of queries for this request: go on from the start of the last minute read.
                return collector.page(Position(previous * 60_000, ""))
            previous = minute
            for item in self._changes_of(minute, collector.last or after):
                position = Position(*event_index.split_order_key(item[event_index.ORDER]["S"]))
                if collector.wants(position) and not collector.offer(position, _doc(item)):
                    return collector.page(None)
        return collector.page(None)

    def _minutes_with_events(self, newest: int, oldest: int, wiki: str | None) -> Iterator[int]:
        """The minutes `newest..oldest` (descending) in which the scope counted an event: read lazily from its
        cells, newest first, so empty stretches cost no Query of the events."""
        if newest < oldest:
            return
        first, last = cells.window_bounds(oldest, newest)
        previous = None
        for item in self._query(
            TableName=self._table, ScanIndexForward=False,
            KeyConditionExpression="pk = :scope AND sk BETWEEN :first AND :last",
            ExpressionAttributeValues={":scope": {"S": cells.TOTAL if wiki is None else cells.wiki_scope(wiki)},
                                       ":first": {"S": first}, ":last": {"S": last}},
        ):
            minute, _ = cells.split_sort_key(item["sk"]["S"])
            if minute != previous and cells.counters(item).get("events", 0) > 0:
                previous = minute
                yield minute

    def _changes_of(self, minute: int, bound: Position | None) -> Iterator[dict[str, Any]]:
        """The minute's changes newest first, those before `bound` only when it lies in that minute."""
        names = {"#minute": event_index.MINUTE}
        values: dict[str, Any] = {":minute": {"N": str(minute)}}
        condition = "#minute = :minute"
        if bound is not None and bound.ms // 60_000 == minute:
            condition += " AND #order < :order"
            names["#order"] = event_index.ORDER
            values[":order"] = {"S": event_index.order_key(bound.ms, bound.key)}
        yield from self._query(TableName=self._events_table, IndexName=event_index.RECENT_INDEX,
                               KeyConditionExpression=condition, ScanIndexForward=False,
                               ExpressionAttributeNames=names, ExpressionAttributeValues=values)

    def _pages_of(self, minute: int, wiki: str | None) -> Counter[str]:
        """The minute's page edits: its stored revisions (their documents name the page)."""
        pages: Counter[str] = Counter()
        for item in self._query(TableName=self._events_table, IndexName=event_index.RECENT_INDEX,
                                KeyConditionExpression="#minute = :minute", ProjectionExpression="pk, #doc",
                                ExpressionAttributeNames={"#minute": event_index.MINUTE, "#doc": event_index.DOC},
                                ExpressionAttributeValues={":minute": {"N": str(minute)}}):
            if not is_revision_key(item["pk"]["S"]):
                continue
            doc = _doc(item)
            if doc.get("title") and (wiki is None or doc.get("wiki") == wiki):
                pages[keys.page_member(doc["wiki"], doc["title"])] += 1
        return pages

    def _query(self, **request: Any) -> Iterator[dict[str, Any]]:
        with _translated("querying counters and changes"):
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


def _doc(item: dict[str, Any]) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(item[event_index.DOC]["S"])
    except (KeyError, json.JSONDecodeError):
        return {}
    return doc
