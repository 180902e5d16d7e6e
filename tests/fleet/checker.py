"""Exactly-once check: the source's distinct events against what each store holds.

The source side is a set of de-duplication keys (`wikitide.events.RecentChange.dedup_key`) with each key's
event minute. Each store is a `StoreView` that answers how often it holds or counted each key, or, where a
store only keeps totals, how much it counted per minute; the check turns both into `lost` and `duplicated`.
Views: the DynamoDB events table (one item per key, attribute `pk`; its edits per page and minute); the DynamoDB
counter cells summed over shards per minute and per wiki and minute; the same three in Redis (`wt:m:{minute}`,
`wt:m:{minute}:w:{wiki}`, the page sorted sets `wt:p:{minute}`); and the API's `/v1/stats` total. The expected
values come from the events' JSON alone (`tests.recorded`), not from wikitide's parser.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from wikitide import keys

Page = tuple[str, str]  # (wiki, title)
SCAN_PAGE = 1000  # items per Scan request: moto answers a large table's unbounded page slower than a timeout


@dataclass(frozen=True)
class Expected:
    """The distinct events the source sent: key -> event minute, and, where known, key -> wiki and key -> the
    page it counts for (edits and page creations only)."""

    minutes: Mapping[str, int]
    wikis: Mapping[str, str] = field(default_factory=dict)
    pages: Mapping[str, Page | None] = field(default_factory=dict)

    @classmethod
    def of(cls, sent: Iterable[Any]) -> Expected:
        """From `tests.fleet.traffic.Sent` records (copies included: they share their original's key)."""
        records = list(sent)
        return cls(
            minutes={s.dedup_key: s.minute for s in records},
            wikis={s.dedup_key: s.wiki for s in records},
            pages={s.dedup_key: s.counted_page for s in records},
        )

    @property
    def per_minute(self) -> Counter[int]:
        return Counter(self.minutes.values())

    @property
    def per_wiki_minute(self) -> Counter[tuple[int, str]]:
        return Counter((self.minutes[key], wiki) for key, wiki in self.wikis.items())

    @property
    def per_page_minute(self) -> Counter[tuple[int, str, str]]:
        return Counter((self.minutes[key], *page) for key, page in self.pages.items() if page is not None)


@dataclass(frozen=True)
class StoreReport:
    store: str
    expected: int
    held: int
    lost: int
    duplicated: int
    unexpected: int = 0
    examples: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.unexpected == 0


@dataclass(frozen=True)
class Report:
    stores: tuple[StoreReport, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(store.ok for store in self.stores)

    @property
    def lost(self) -> int:
        return max((store.lost for store in self.stores), default=0)

    @property
    def duplicated(self) -> int:
        return max((store.duplicated for store in self.stores), default=0)

    def __str__(self) -> str:
        return "; ".join(
            f"{s.store}: expected {s.expected}, held {s.held}, lost {s.lost}, duplicated {s.duplicated}, "
            f"unexpected {s.unexpected}" + (f" e.g. {list(s.examples)}" if s.examples else "")
            for s in self.stores
        )


class StoreView(Protocol):
    name: str

    def report(self, expected: Expected) -> StoreReport: ...


class MultiStoreView(Protocol):
    """A store read once for several reports (a table holding several kinds of counts)."""

    name: str

    def reports(self, expected: Expected) -> list[StoreReport]: ...


def compare_keys(name: str, expected: Expected, held: Counter[str]) -> StoreReport:
    """A store that holds items by key: every expected key exactly once, nothing else."""
    lost = [key for key in expected.minutes if held[key] == 0]
    doubled = {key: n for key, n in held.items() if n > 1}
    extra = [key for key in held if key not in expected.minutes]
    return StoreReport(
        store=name, expected=len(expected.minutes), held=sum(held.values()), lost=len(lost),
        duplicated=sum(n - 1 for n in doubled.values()), unexpected=len(extra),
        examples=tuple((lost + list(doubled) + extra)[:5]),
    )


def compare_counts(name: str, want: Mapping[Any, int], counted: Mapping[Any, int]) -> StoreReport:
    """A store that counts per key (a minute; a minute and wiki; a minute and page): every key's count equals
    its distinct events. `unexpected` counts what was counted under a key the source never had."""
    lost = sum(max(0, n - counted.get(key, 0)) for key, n in want.items())
    duplicated = sum(max(0, counted.get(key, 0) - n) for key, n in want.items())
    unexpected = sum(n for key, n in counted.items() if key not in want and n)
    wrong = [key for key in want if counted.get(key, 0) != want[key]]
    wrong += [key for key, n in counted.items() if key not in want and n]
    examples = tuple(f"{key}: {counted.get(key, 0)} of {want.get(key, 0)}" for key in wrong[:5])
    return StoreReport(
        store=name, expected=sum(want.values()), held=sum(counted.values()), lost=lost, duplicated=duplicated,
        unexpected=unexpected, examples=examples,
    )


def compare_minutes(name: str, expected: Expected, counted: Mapping[int, int]) -> StoreReport:
    """A store that only counts per minute: each minute's count equals its distinct events."""
    return compare_counts(name, expected.per_minute, counted)


@dataclass
class DynamoEventsView:
    """The events table: one item per de-duplication key (attribute `pk`), and, for edits and page creations, one
    edit of its `page` (`wiki<TAB>title`) in its event-time `minute`: the page counts DynamoDB holds. One scan, two
    reports."""

    dynamodb: Any
    table: str
    name: str = "dynamodb events table"

    def held(self) -> Counter[str]:
        return self._scan()[0]

    def reports(self, expected: Expected) -> list[StoreReport]:
        held, pages = self._scan()
        return [compare_keys(self.name, expected, held),
                compare_counts(f"{self.name} page edits per page and minute", expected.per_page_minute, pages)]

    def _scan(self) -> tuple[Counter[str], Counter[tuple[int, str, str]]]:
        held: Counter[str] = Counter()
        pages: Counter[tuple[int, str, str]] = Counter()
        kwargs: dict[str, Any] = {
            "TableName": self.table, "ProjectionExpression": "pk, #type, #page, #minute",
            "ExpressionAttributeNames": {"#type": "type", "#page": "page", "#minute": "minute"},
            "ConsistentRead": True, "Limit": SCAN_PAGE,
        }
        while True:
            page = self.dynamodb.scan(**kwargs)
            for item in page["Items"]:
                held[item["pk"]["S"]] += 1
                if item.get("type", {}).get("S") in ("edit", "new") and "page" in item:
                    pages[(int(item["minute"]["N"]), *keys.split_page_member(item["page"]["S"]))] += 1
            if "LastEvaluatedKey" not in page:
                return held, pages
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@dataclass
class RedisMinutesView:
    """The overall per-minute hashes `wt:m:{minute}`, field `events` (a client with `decode_responses=True`)."""

    redis: Any
    name: str = "redis minute counters"

    def report(self, expected: Expected) -> StoreReport:
        counted: dict[int, int] = {}
        prefix = keys.counts_key(0)[:-1]
        for key in self.redis.scan_iter(match=prefix + "*", count=1000):
            minute = key[len(prefix):]
            if minute.isdigit():  # not the per-wiki hashes `wt:m:{minute}:w:{wiki}`
                counted[int(minute)] = int(self.redis.hget(key, "events") or 0)
        return compare_minutes(self.name, expected, counted)


@dataclass
class RedisWikiMinutesView:
    """The per-wiki minute hashes `wt:m:{minute}:w:{wiki}`, field `events`."""

    redis: Any
    name: str = "redis per-wiki minute counters"

    def report(self, expected: Expected) -> StoreReport:
        counted: dict[tuple[int, str], int] = {}
        prefix = keys.counts_key(0)[:-1]
        for key in self.redis.scan_iter(match=prefix + "*:w:*", count=1000):
            minute, _, wiki = key[len(prefix):].partition(":w:")
            counted[(int(minute), wiki)] = int(self.redis.hget(key, "events") or 0)
        return compare_counts(self.name, expected.per_wiki_minute, counted)


@dataclass
class RedisPagesView:
    """The per-minute page sorted sets `wt:p:{minute}` (member `wiki<TAB>title`, score its edits)."""

    redis: Any
    name: str = "redis per-page minute counts"

    def report(self, expected: Expected) -> StoreReport:
        counted: dict[tuple[int, str, str], int] = {}
        prefix = keys.pages_key(0)[:-1]
        for key in self.redis.scan_iter(match=prefix + "*", count=1000):
            minute = key[len(prefix):]
            if minute.isdigit():  # not the per-wiki sets `wt:p:{minute}:w:{wiki}`
                for member, score in self.redis.zscan_iter(key, count=1000):
                    counted[(int(minute), *keys.split_page_member(member))] = int(score)
        return compare_counts(self.name, expected.per_page_minute, counted)


@dataclass
class DynamoCountersView:
    """The DynamoDB counter cells (the truth the Redis buckets are merged from): `pk` the scope (`*` overall,
    `w:<wiki>`), `sk` `<minute>#<shard>`, attribute `events`; one cell per shard, so a key's count is the sum over
    shards. One scan, two reports: per minute, per wiki and minute."""

    dynamodb: Any
    table: str
    name: str = "dynamodb counters"

    def reports(self, expected: Expected) -> list[StoreReport]:
        overall: dict[int, int] = {}
        wikis: dict[tuple[int, str], int] = {}
        for (scope, minute), n in self.cells().items():
            if scope == "*":
                overall[minute] = n
            elif scope.startswith("w:"):
                wikis[(minute, scope[2:])] = n
        return [
            compare_counts(f"{self.name} per minute", expected.per_minute, overall),
            compare_counts(f"{self.name} per wiki and minute", expected.per_wiki_minute, wikis),
        ]

    def cells(self) -> Counter[tuple[str, int]]:
        summed: Counter[tuple[str, int]] = Counter()
        kwargs: dict[str, Any] = {
            "TableName": self.table, "ConsistentRead": True, "Limit": SCAN_PAGE,
            "ProjectionExpression": "pk, sk, events",
        }
        while True:
            page = self.dynamodb.scan(**kwargs)
            for item in page["Items"]:
                minute, separator, _shard = item["sk"]["S"].partition("#")
                if separator and minute.isdigit() and "events" in item:
                    summed[(item["pk"]["S"], int(minute))] += int(item["events"]["N"])
            if "LastEvaluatedKey" not in page:
                return summed
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@dataclass
class ApiStatsView:
    """The API's `/v1/stats?window=24h` total, through a Flask test client of `api.create_app`."""

    get_json: Callable[[str], Mapping[str, Any]]
    name: str = "api /v1/stats"

    def report(self, expected: Expected) -> StoreReport:
        answered = int(self.get_json("/v1/stats?window=24h")["events"])
        want = len(expected.minutes)
        return StoreReport(
            store=self.name, expected=want, held=answered, lost=max(0, want - answered),
            duplicated=max(0, answered - want),
        )


def check(expected: Expected, views: Iterable[StoreView | MultiStoreView]) -> Report:
    reports: list[StoreReport] = []
    for view in views:
        if hasattr(view, "reports"):
            reports.extend(view.reports(expected))
        else:
            reports.append(view.report(expected))
    return Report(tuple(reports))
