"""Exactly-once check: the source's distinct events against what each store holds.

The source side is a set of de-duplication keys (`wikitide.events.RecentChange.dedup_key`) with each key's
event minute. Each store is a `StoreView` that answers how often it holds or counted each key, or, where a
store only keeps totals, how much it counted per minute; the check turns both into `lost` and `duplicated`.
Views today: the DynamoDB events table (one item per key, attribute `pk`), the Redis per-minute hashes
`wt:m:{minute}` (field `events`), and the API's `/v1/stats` total. A new store (a DynamoDB counters table,
the latest-per-page table) is one more view in `default_views`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from wikitide import keys


@dataclass(frozen=True)
class Expected:
    """The distinct events the source sent: key -> event minute."""

    minutes: Mapping[str, int]

    @property
    def per_minute(self) -> Counter[int]:
        return Counter(self.minutes.values())


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


def compare_minutes(name: str, expected: Expected, counted: Mapping[int, int]) -> StoreReport:
    """A store that only counts per minute: each minute's count equals its distinct events."""
    want = expected.per_minute
    lost = sum(max(0, n - counted.get(minute, 0)) for minute, n in want.items())
    duplicated = sum(max(0, counted.get(minute, 0) - n) for minute, n in want.items())
    unexpected = sum(n for minute, n in counted.items() if minute not in want)
    examples = tuple(
        f"minute {m}: {counted.get(m, 0)} of {n}" for m, n in sorted(want.items()) if counted.get(m, 0) != n
    )[:5]
    return StoreReport(
        store=name, expected=sum(want.values()), held=sum(counted.values()), lost=lost, duplicated=duplicated,
        unexpected=unexpected, examples=examples,
    )


@dataclass
class DynamoEventsView:
    """The events table: one item per de-duplication key, attribute `pk`."""

    dynamodb: Any
    table: str
    name: str = "dynamodb events table"

    def report(self, expected: Expected) -> StoreReport:
        held: Counter[str] = Counter()
        kwargs: dict[str, Any] = {"TableName": self.table, "ProjectionExpression": "pk", "ConsistentRead": True}
        while True:
            page = self.dynamodb.scan(**kwargs)
            held.update(item["pk"]["S"] for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                return compare_keys(self.name, expected, held)
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


def check(expected: Expected, views: Iterable[StoreView]) -> Report:
    return Report(tuple(view.report(expected) for view in views))
