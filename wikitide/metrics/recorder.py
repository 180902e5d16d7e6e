"""What a process measures, kept in memory until the publisher takes it: the pure half of the metrics.

The data path only ever calls `count` and `observe`: a dictionary update under a lock, no I/O, nothing that can
raise for a service being slow or down. A background publisher (`wikitide.metrics.publisher`) drains the
recorder every interval and hands the datums to a sink; what a sink fails to take is dropped and counted
(`MetricsDropped`), never retried into the next interval and never waited for.

Observations are kept as a histogram: each value rounded to two significant digits (at most 5% off, which a
p99 on a dashboard tolerates) with a count per rounded value, the shape CloudWatch's `Values`/`Counts` take, so
memory per metric and interval is bounded (about 90 distinct values per power of ten) whatever the rate.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

COUNT = "Count"
MILLISECONDS = "Milliseconds"
BYTES = "Bytes"
# CloudWatch takes at most this many distinct values in one datum; a histogram with more is split over datums.
MAX_VALUES_PER_DATUM = 150
DROPPED = "MetricsDropped"


class Metrics(Protocol):
    """The port the processes measure through. Never blocks on I/O, never raises."""

    def count(self, name: str, value: float = 1.0) -> None:
        """Add `value` to the counter `name` (published as its sum per interval, 0 once seen and then idle)."""

    def observe(self, name: str, value: float, unit: str = MILLISECONDS) -> None:
        """Add one observation of `name` (published as a distribution: count, sum, min, max, percentiles)."""


class NullMetrics:
    """Measures nothing: for tests and for processes with metrics turned off."""

    def count(self, name: str, value: float = 1.0) -> None:
        return None

    def observe(self, name: str, value: float, unit: str = MILLISECONDS) -> None:
        return None


NULL_METRICS = NullMetrics()


@dataclass(frozen=True, slots=True)
class Datum:
    """One metric over one interval: `values[i]` was seen `counts[i]` times."""

    name: str
    unit: str
    values: tuple[float, ...]
    counts: tuple[float, ...]
    timestamp: float  # seconds since the epoch: the end of the interval

    @property
    def sample_count(self) -> float:
        return sum(self.counts)


def rounded(value: float) -> float:
    """`value` to two significant digits (0 stays 0); not finite values are not observations."""
    if value == 0:
        return 0.0
    digits = 1 - math.floor(math.log10(abs(value)))
    return round(value, digits)


class MetricsRecorder:
    """Counters and histograms of one process, thread-safe. `drain` takes everything recorded since the last
    drain; counters once seen are published every interval after, as 0 when idle (an alarm on a rate then sees a
    zero, not missing data)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counters: dict[str, float] = {}
        self._histograms: dict[str, tuple[str, dict[float, float]]] = {}

    def count(self, name: str, value: float = 1.0) -> None:
        if not math.isfinite(value):
            return
        with self._lock:
            self._counters[name] = self._counters.get(name, 0.0) + value

    def observe(self, name: str, value: float, unit: str = MILLISECONDS) -> None:
        if not math.isfinite(value):
            return
        key = rounded(value)
        with self._lock:
            histogram = self._histograms.get(name)
            if histogram is None:
                histogram = self._histograms[name] = (unit, {})
            counts = histogram[1]
            counts[key] = counts.get(key, 0.0) + 1.0

    def drain(self) -> list[Datum]:
        """Everything recorded since the last drain, as datums of at most `MAX_VALUES_PER_DATUM` values."""
        now = self._clock()
        with self._lock:
            counters = dict(self._counters)
            self._counters = dict.fromkeys(self._counters, 0.0)
            histograms = self._histograms
            self._histograms = {}
        datums = [Datum(name, COUNT, (total,), (1.0,), now) for name, total in sorted(counters.items())]
        for name, (unit, counts) in sorted(histograms.items()):
            datums.extend(_split(name, unit, counts, now))
        return datums


def _split(name: str, unit: str, counts: Mapping[float, float], now: float) -> list[Datum]:
    items = sorted(counts.items())
    return [
        Datum(name, unit, tuple(v for v, _ in part), tuple(c for _, c in part), now)
        for part in (items[i : i + MAX_VALUES_PER_DATUM] for i in range(0, len(items), MAX_VALUES_PER_DATUM))
    ]
