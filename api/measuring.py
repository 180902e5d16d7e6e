"""Request metrics of the API: Requests, Latency (ms), Status4xx and Status5xx, through the `Metrics` port.

Recorded in Flask's request hooks, so every answer counts, errors answered by the error handlers included; the
recording is an in-memory update (`wikitide.metrics`), never I/O on the request's path.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask, Response, g

from wikitide.metrics import Metrics


def measure_requests(app: Flask, metrics: Metrics, clock: Callable[[], float] = time.monotonic) -> None:
    for name in ("Requests", "Status4xx", "Status5xx", "FallbackReads"):
        metrics.count(name, 0)

    @app.before_request
    def _start() -> None:
        g.wikitide_started = clock()

    @app.after_request
    def _measure(response: Response) -> Response:
        started = g.pop("wikitide_started", None)
        metrics.count("Requests")
        if started is not None:
            metrics.observe("Latency", 1000 * (clock() - started))
        if 400 <= response.status_code < 500:
            metrics.count("Status4xx")
        elif response.status_code >= 500:
            metrics.count("Status5xx")
        return response
