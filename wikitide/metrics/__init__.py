"""The pipeline's own metrics: a `Metrics` port for the cores, a recorder, and a publisher behind it.

`open_metrics(settings, component)` is what a composition root calls: it returns the `Metrics` to pass down and
a `close` to call on the way out. With `WIKITIDE_METRICS=off` (the default) both do nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from wikitide.metrics.recorder import BYTES, COUNT, MILLISECONDS, NULL_METRICS, Metrics, MetricsRecorder, NullMetrics
from wikitide.settings import Settings

__all__ = ["BYTES", "COUNT", "MILLISECONDS", "NULL_METRICS", "Metrics", "MetricsHandle", "NullMetrics",
           "open_metrics"]

# How long a process waits on its way out for its last interval to be published.
CLOSE_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class MetricsHandle:
    metrics: Metrics
    close: Callable[[], None]


def open_metrics(settings: Settings, component: str) -> MetricsHandle:
    """Start publishing `component`'s metrics as `settings` say; the caller passes `metrics` down."""
    if settings.metrics == "off":
        return MetricsHandle(NULL_METRICS, lambda: None)
    from wikitide.aws import make_client
    from wikitide.metrics import cloudwatch
    from wikitide.metrics.publisher import PeriodicPublisher

    client = make_client(settings, "cloudwatch", max_attempts=1, read_timeout=cloudwatch.READ_TIMEOUT,
                         connect_timeout=cloudwatch.CONNECT_TIMEOUT)
    recorder = MetricsRecorder(time.time)
    sink = cloudwatch.CloudWatchSink(client, stack=settings.stack_name, component=component)
    publisher = PeriodicPublisher(recorder, sink, interval=settings.metrics_interval).start()
    return MetricsHandle(recorder, lambda: publisher.close(CLOSE_TIMEOUT_SECONDS))
