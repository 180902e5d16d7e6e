"""Whole answers of the read endpoints, kept for a second in each API process.

Every answer of a window is a function of the newest processed minute and what the processors wrote; a dashboard
left open and many clients asking the same windows would otherwise each pay the Redis reads, the ranking in
Python and the serialisation (a 24 h `/v1/wikis` decodes about 900 wikis' counters per request). Within `ttl`
seconds a repeated request (same path and query string) gets the bytes of the first answer, with an `Age` header;
only 200 answers are kept, so a refusal or a 503 is never repeated from here.

The cache runs after the rate limiter (its hook is installed after the limiter's), so a kept answer still counts
against the client's limit. Memory is bounded by `max_bytes` (oldest answers go first), whatever query strings
clients invent. Per process: gunicorn's workers each keep their own.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass

from flask import Flask, Response, g, request

# The windows' answers are a few KB; the largest, a 500-change page of recent edits, stays under a megabyte (a stored
# document is 1-2 KB: `benchmarks/cost_per_event.py`). Expired answers leave on their next read or by this bound.
DEFAULT_MAX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Kept:
    body: bytes
    mimetype: str
    stored_at: float


class AnswerCache:
    """Answers by key for `ttl` seconds, at most `max_bytes` of them in all. Thread-safe."""

    def __init__(self, ttl: float, max_bytes: int = DEFAULT_MAX_BYTES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._max_bytes = max_bytes
        self._clock = clock
        self._kept: OrderedDict[str, Kept] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Kept | None:
        with self._lock:
            kept = self._kept.get(key)
            if kept is None:
                return None
            if self._clock() - kept.stored_at >= self.ttl:
                self._drop(key)
                return None
            return kept

    def put(self, key: str, body: bytes, mimetype: str) -> None:
        if len(body) > self._max_bytes:
            return
        with self._lock:
            if key in self._kept:
                self._drop(key)
            self._kept[key] = Kept(body, mimetype, self._clock())
            self._bytes += len(body)
            while self._bytes > self._max_bytes:
                self._drop(next(iter(self._kept)))

    def age(self, kept: Kept) -> int:
        """Whole seconds since `kept` was stored (the HTTP `Age` header)."""
        return int(self._clock() - kept.stored_at)

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._kept)

    def _drop(self, key: str) -> None:
        self._bytes -= len(self._kept.pop(key).body)


def install(app: Flask, cache: AnswerCache, endpoints: Collection[str]) -> None:
    """Serve GETs of `endpoints` (Flask endpoint names) from `cache`; call after the rate limiter's install."""

    @app.before_request
    def _answer_from_cache() -> Response | None:
        if request.method != "GET" or request.endpoint not in endpoints:
            return None
        key = request.full_path
        kept = cache.get(key)
        if kept is None:
            g.wikitide_answer_key = key
            return None
        response = Response(kept.body, 200, mimetype=kept.mimetype)
        response.headers["Age"] = str(cache.age(kept))
        return response

    @app.after_request
    def _keep_answer(response: Response) -> Response:
        key = g.pop("wikitide_answer_key", None)
        if key is not None and response.status_code == 200 and not response.is_streamed:
            cache.put(key, response.get_data(), response.mimetype or "application/json")
        return response
