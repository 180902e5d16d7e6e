"""Whole answers of the read endpoints, kept for up to a second in each API process, while the data is unchanged.

Every answer of a window is a function of the newest processed minute and what the processors wrote; a dashboard
left open and many clients asking the same windows would otherwise each pay the Redis reads, the ranking in
Python and the serialisation (a 24 h `/v1/wikis` decodes about 900 wikis' counters per request). Within `ttl`
seconds a repeated request (same path and query string) gets the bytes of the first answer, with an `Age` header;
only 200 answers are kept, so a refusal or a 503 is never repeated from here.

An answer is also dropped as soon as the data can have changed: the processors move a version in Redis after
every write of the read model (`wikitide.keys.DATA_VERSION`), each process polls it (`DataVersion`, every 50 ms),
and a kept answer is reused only under the version it was computed at. With a 1 s ttl alone, an answer was on
average half a second behind the pipeline (the latency benchmark's p50 paid it); now at most a poll interval,
while a hot URL still costs the stores one read per change rather than one per request. While the version cannot
be read (Redis down, the API answering from DynamoDB) answers live by the ttl alone. One request computes an
answer that is not kept; the process's other requests for the same URL meanwhile get the previous answer (at most
`SERVE_PREVIOUS_SECONDS` past its ttl), or, when there is none, wait for the new one.

The cache runs after the rate limiter (its hook is installed after the limiter's), so a kept answer still counts
against the client's limit. Memory is bounded by `max_bytes` (oldest answers go first), whatever query strings
clients invent. Per process: gunicorn's workers each keep their own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass

from flask import Flask, Response, g, request

logger = logging.getLogger(__name__)

# The windows' answers are a few KB; the largest, a 500-change page of recent edits, stays under a megabyte (a stored
# document is 1-2 KB: `benchmarks/cost_per_event.py`). Expired answers leave on their next read or by this bound.
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
# A request waits at most this long for the same answer being computed by another request of its process.
COMPUTING_WAIT_SECONDS = 5.0
# While one request computes an answer again (its time or version is up), the others asking for it get the previous
# one if it is at most this much past its ttl, rather than wait: a hot answer's recomputation once a second held every
# request arriving during its Redis reads (the API benchmark's paced p99: trending 8-15 ms).
SERVE_PREVIOUS_SECONDS = 2.0


@dataclass(frozen=True)
class Kept:
    body: bytes
    mimetype: str
    stored_at: float
    version: object = None  # the data version read before the answer was computed


class DataVersion:
    """The read model's version as this process last read it, polled every `interval` seconds by a daemon thread
    (a greenlet under gevent) that runs while answers are asked for: started by `current()` (so in each gunicorn
    worker, after the fork), it ends after `idle_after` seconds without a call, so an idle process (or an app a
    test dropped) polls nothing.

    `current()` is None while the last read failed, found no version, or is older than `stale_after` seconds:
    answers then live by the cache's ttl alone. `read` returns the version or None; it must not raise for a store
    that is down, and must bound its own time (a socket timeout): a hung store holds the poller, never a request."""

    def __init__(self, read: Callable[[], object | None], *, interval: float = 0.05, stale_after: float = 1.0,
                 idle_after: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self._interval = interval
        self._stale_after = stale_after
        self._idle_after = idle_after
        self._clock = clock
        self._value: object | None = None
        self._read_at = float("-inf")
        self._asked_at = float("-inf")
        self._polling = False
        self._lock = threading.Lock()

    def current(self) -> object | None:
        self._asked_at = self._clock()
        if not self._polling:
            self._start()
        value, read_at = self._value, self._read_at
        return value if self._clock() - read_at <= self._stale_after else None

    def poll_once(self) -> None:
        value = self._read()
        self._value, self._read_at = value, self._clock()

    @property
    def is_polling(self) -> bool:
        return self._polling

    def _start(self) -> None:
        with self._lock:
            if self._polling:
                return
            self._polling = True
        threading.Thread(target=self._run, name="data-version", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._clock() - self._asked_at > self._idle_after:
                    self._polling = False  # the next `current()` starts another poller
                    return
            try:
                self.poll_once()
            except Exception:  # a background thread's outermost loop: answers fall back to the ttl meanwhile
                logger.exception("reading the data version failed")
            time.sleep(self._interval)


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
        self._computing: dict[str, threading.Event] = {}

    def get(self, key: str, version: object = None) -> Kept | None:
        """The answer kept for `key` if it is younger than the ttl and was computed at `version`."""
        with self._lock:
            kept = self._live(key)
            if kept is None or self._clock() - kept.stored_at >= self.ttl or kept.version != version:
                return None
            return kept

    def previous(self, key: str) -> Kept | None:
        """The answer last kept for `key`, whatever its version, unless it is more than `SERVE_PREVIOUS_SECONDS`
        past its ttl: what a request gets while another one computes the answer again."""
        with self._lock:
            return self._live(key)

    def _live(self, key: str) -> Kept | None:
        kept = self._kept.get(key)
        if kept is not None and self._clock() - kept.stored_at >= self.ttl + SERVE_PREVIOUS_SECONDS:
            self._drop(key)
            return None
        return kept

    def put(self, key: str, body: bytes, mimetype: str, version: object = None) -> None:
        if len(body) > self._max_bytes:
            return
        with self._lock:
            if key in self._kept:
                self._drop(key)
            self._kept[key] = Kept(body, mimetype, self._clock(), version)
            self._bytes += len(body)
            while self._bytes > self._max_bytes:
                self._drop(next(iter(self._kept)))

    def age(self, kept: Kept) -> int:
        """Whole seconds since `kept` was stored (the HTTP `Age` header)."""
        return int(self._clock() - kept.stored_at)

    def claim(self, key: str) -> threading.Event | None:
        """None if the caller is now the one computing `key`'s answer (it must `release` it), else the event that
        the one computing it sets when done."""
        with self._lock:
            computing = self._computing.get(key)
            if computing is None:
                self._computing[key] = threading.Event()
            return computing

    def release(self, key: str) -> None:
        with self._lock:
            computing = self._computing.pop(key, None)
        if computing is not None:
            computing.set()

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._kept)

    def _drop(self, key: str) -> None:
        self._bytes -= len(self._kept.pop(key).body)


def install(app: Flask, cache: AnswerCache, endpoints: Collection[str],
            version: Callable[[], object | None] = lambda: None) -> None:
    """Serve GETs of `endpoints` (Flask endpoint names) from `cache`, each answer only under the data `version` it
    was computed at (`DataVersion.current`); call after the rate limiter's install."""

    @app.before_request
    def _answer_from_cache() -> Response | None:
        asked = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup, not three
        if asked.method != "GET" or asked.endpoint not in endpoints:
            return None
        key = asked.full_path
        # Read before the answer is computed: data written meanwhile moves the version past the one kept with it.
        current = version()
        kept = cache.get(key, current)
        if kept is None:
            computing = cache.claim(key)
            if computing is not None:
                # Another request of this process computes the same answer: take the previous one, or wait for
                # the new one, rather than compute it again (when a hot answer ends, every request arriving during
                # its Redis reads missed and computed it too, each paying the same reads and CPU).
                kept = cache.previous(key)
                if kept is None:
                    computing.wait(COMPUTING_WAIT_SECONDS)
                    kept = cache.get(key, current)
            if kept is None:
                if computing is not None and cache.claim(key) is not None:
                    return None  # computed without keeping (the other one failed or is slow): compute, do not keep
                g.wikitide_answer_key = key, current
                return None
        response = Response(kept.body, 200, mimetype=kept.mimetype)
        response.headers["Age"] = str(cache.age(kept))
        return response

    @app.after_request
    def _keep_answer(response: Response) -> Response:
        pending = g.pop("wikitide_answer_key", None)
        if pending is not None:
            key, current = pending
            if response.status_code == 200 and not response.is_streamed:
                cache.put(key, response.get_data(), response.mimetype or "application/json", current)
            cache.release(key)
        return response

    @app.teardown_request
    def _release(_exc: BaseException | None) -> None:
        # A request that ended in an unhandled error never reached `_keep_answer`: the ones waiting go on.
        pending = g.pop("wikitide_answer_key", None)
        if pending is not None:
            cache.release(pending[0])
