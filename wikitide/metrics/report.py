"""`wikitide metrics`: the last minutes of one stack's own metrics, read back from CloudWatch, as a table.

One row per (component, metric) with what CloudWatch answers for the window: the sum (for counters, the total
over the window), samples, average, maximum and, where the backend computes them (AWS; not moto), p50 and p99.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from wikitide.metrics.cloudwatch import NAMESPACE

STATISTICS = ["SampleCount", "Sum", "Average", "Maximum"]
PERCENTILES = ["p50", "p99"]


@dataclass(frozen=True)
class MetricRow:
    component: str
    metric: str
    unit: str
    sum: float
    samples: float
    average: float | None
    maximum: float | None
    p50: float | None = None
    p99: float | None = None


def read_rows(client: Any, stack: str, start: datetime, end: datetime, namespace: str = NAMESPACE) -> list[MetricRow]:
    """Every metric of `stack` in `namespace`, summarised over [start, end)."""
    period = max(60, int((end - start).total_seconds()) // 60 * 60)
    rows = []
    for metric in _metrics_of(client, stack, namespace):
        dimensions = metric["Dimensions"]
        component = next((d["Value"] for d in dimensions if d["Name"] == "Component"), "?")
        answer = client.get_metric_statistics(
            Namespace=namespace, MetricName=metric["MetricName"], Dimensions=dimensions, StartTime=start,
            EndTime=end, Period=period, Statistics=STATISTICS, ExtendedStatistics=PERCENTILES,
        )
        row = summarise(component, metric["MetricName"], answer.get("Datapoints", []))
        if row is not None:
            rows.append(row)
    return sorted(rows, key=lambda r: (r.component, r.metric))


def _metrics_of(client: Any, stack: str, namespace: str) -> list[dict[str, Any]]:
    """Each metric once (moto's ListMetrics names a metric once per datum stored)."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]] = {}
    for page in client.get_paginator("list_metrics").paginate(
        Namespace=namespace, Dimensions=[{"Name": "Stack", "Value": stack}]
    ):
        for metric in page.get("Metrics", []):
            dimensions = tuple(sorted((d["Name"], d["Value"]) for d in metric.get("Dimensions", [])))
            found.setdefault((metric["MetricName"], dimensions), metric)
    return list(found.values())


def summarise(component: str, metric: str, datapoints: Sequence[dict[str, Any]]) -> MetricRow | None:
    """One row from the datapoints of a window (one, or several when the window spans periods)."""
    if not datapoints:
        return None
    samples = sum(float(d.get("SampleCount", 0)) for d in datapoints)
    total = sum(float(d.get("Sum", 0)) for d in datapoints)
    maxima = [float(d["Maximum"]) for d in datapoints if "Maximum" in d]
    extended = datapoints[0].get("ExtendedStatistics", {}) if len(datapoints) == 1 else {}
    return MetricRow(
        component=component, metric=metric, unit=str(datapoints[0].get("Unit", "None")), sum=total,
        samples=samples, average=total / samples if samples else None, maximum=max(maxima) if maxima else None,
        p50=extended.get("p50"), p99=extended.get("p99"),
    )


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:,.2f}"


def format_table(rows: Sequence[MetricRow], minutes: float) -> str:
    if not rows:
        return f"no metrics in the last {minutes:g} minutes"
    header = ("COMPONENT", "METRIC", "UNIT", "SUM", "SAMPLES", "AVG", "P50", "P99", "MAX")
    lines = [header] + [
        (r.component, r.metric, r.unit, _number(r.sum), _number(r.samples), _number(r.average), _number(r.p50),
         _number(r.p99), _number(r.maximum))
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) if i < 3 else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(line, widths, strict=True)))
            for line in lines]
    return "\n".join(text) + f"\n(last {minutes:g} minutes; counters: SUM is the total, AVG per publish interval)"


def to_json(rows: Sequence[MetricRow]) -> str:
    return json.dumps([asdict(r) for r in rows], indent=2)


def window(now: datetime, minutes: float) -> tuple[datetime, datetime]:
    """The last `minutes` up to and including `now`. The end is rounded up to the next whole second: the service
    (moto's, at least) drops an end's fraction of a second, so a datum published a moment ago, in the same second,
    would otherwise fall outside the window it was published in."""
    end = now.replace(microsecond=0) + timedelta(seconds=1)
    return end - timedelta(minutes=minutes), end
