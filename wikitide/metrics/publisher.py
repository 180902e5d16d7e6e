"""The background half of the metrics: every interval, drain the recorder and hand the datums to a sink.

Nothing here runs on the data path. A sink call is bounded by the sink's own timeouts (one attempt, no retry:
the next interval brings fresh numbers, and a retried publish would only fall behind); when it fails its datums
are dropped, counted under `MetricsDropped` (published with the next interval that gets through) and the failure
is logged once per `LOG_EVERY` failures, so a CloudWatch outage is one log line now and then, never a stall.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

from wikitide.errors import DependencyUnavailable
from wikitide.metrics.recorder import DROPPED, Datum, MetricsRecorder

logger = logging.getLogger(__name__)

LOG_EVERY = 10


class MetricsSink(Protocol):
    def send(self, datums: Sequence[Datum]) -> None:
        """Publish the datums. Raises DependencyUnavailable when they were not (all) taken; never retries."""


class PeriodicPublisher:
    """Drains `recorder` into `sink` every `interval` seconds on a daemon thread, and once more on `close`."""

    def __init__(self, recorder: MetricsRecorder, sink: MetricsSink, *, interval: float) -> None:
        self._recorder = recorder
        self._sink = sink
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one publish at a time: the thread's and close()'s
        self.failures = 0
        self.dropped = 0

    def start(self) -> PeriodicPublisher:
        self._thread = threading.Thread(target=self._run, name="metrics-publisher", daemon=True)
        self._thread.start()
        return self

    def publish_once(self) -> int:
        """Drain and send; returns the datums sent (0 when the sink failed and they were dropped)."""
        with self._lock:
            datums = self._recorder.drain()
            if not datums:
                return 0
            try:
                self._sink.send(datums)
            except DependencyUnavailable as exc:
                self._drop(datums, exc)
                return 0
            except Exception as exc:  # noqa: BLE001 - a metrics bug must never reach the process it measures
                logger.exception("metrics: publishing failed unexpectedly")
                self._drop(datums, exc)
                return 0
            return len(datums)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread and publish what is left, waiting at most about `timeout` seconds for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        final = threading.Thread(target=self.publish_once, name="metrics-final", daemon=True)
        final.start()
        final.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.publish_once()

    def _drop(self, datums: Sequence[Datum], exc: BaseException) -> None:
        self.failures += 1
        self.dropped += len(datums)
        self._recorder.count(DROPPED, len(datums))
        if self.failures % LOG_EVERY == 1:
            logger.warning("metrics: %d datums dropped (%d failures so far): %s", len(datums), self.failures, exc)
