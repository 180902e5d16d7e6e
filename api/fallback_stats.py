"""A `StatsStore` that reads Redis when it holds the counters and DynamoDB when it does not.

Redis is only a read model: after it restarts empty, the processors rebuild it from DynamoDB and mark it
`wt:ready` (see `kcl_app/redis_mirror.py`). Until then, and whenever Redis cannot be reached, every read goes
to the counters in DynamoDB, so the API keeps giving the same answers, only slower.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from api.filters import ChangeFilter
from api.ports import StatsStore
from api.recent import Position, RecentPage
from wikitide.errors import DependencyUnavailable
from wikitide.metrics import NULL_METRICS, Metrics

logger = logging.getLogger(__name__)
T = TypeVar("T")


class FallbackStats:
    COOLOFF_SECONDS = 5.0

    def __init__(
        self,
        primary: StatsStore,
        fallback: Callable[[], StatsStore],
        is_primary_ready: Callable[[], bool],
        *,
        cooloff: float = COOLOFF_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics = NULL_METRICS,
    ) -> None:
        """`fallback` is built on first use: an API whose Redis is always ready never needs it. Each read
        answered from it counts one FallbackReads in `metrics`."""
        self._primary = primary
        self._make_fallback = fallback
        self._fallback: StatsStore | None = None
        self._is_primary_ready = is_primary_ready
        self._cooloff = cooloff
        self._clock = clock
        self._metrics = metrics
        self._skip_primary_until = 0.0
        self._lock = threading.Lock()

    def latest_minute(self) -> int | None:
        return self._read(lambda store: store.latest_minute())

    def minute_counts(self, minutes: Sequence[int], wiki: str | None) -> list[Mapping[str, str | int]]:
        return self._read(lambda store: store.minute_counts(minutes, wiki))

    def page_scores(self, minutes: Sequence[int], wiki: str | None, limit: int) -> list[tuple[str, float]]:
        return self._read(lambda store: store.page_scores(minutes, wiki, limit))

    def wiki_totals(self, first: int, last: int) -> dict[str, dict[str, int]]:
        return self._read(lambda store: store.wiki_totals(first, last))

    def page_edits(self, wiki: str, title: str, spans: Sequence[tuple[int, int]]) -> list[int]:
        return self._read(lambda store: store.page_edits(wiki, title, spans))

    def hour_page_edits(self, members: Sequence[str], hours: Sequence[int]) -> dict[str, int]:
        return self._read(lambda store: store.hour_page_edits(members, hours))

    def recent(self, matches: ChangeFilter, after: Position | None, limit: int) -> RecentPage:
        return self._read(lambda store: store.recent(matches, after, limit))

    def _read(self, call: Callable[[StatsStore], T]) -> T:
        if self._clock() >= self._skip_primary_until:
            try:
                if self._is_primary_ready():
                    return call(self._primary)
            except DependencyUnavailable as exc:
                self._skip_primary_until = self._clock() + self._cooloff
                logger.warning(
                    "Redis unavailable, reading counters from DynamoDB for %gs: %s (%r)", self._cooloff, exc,
                    exc.__cause__,
                )
        with self._lock:
            if self._fallback is None:
                self._fallback = self._make_fallback()
        self._metrics.count("FallbackReads")
        return call(self._fallback)
