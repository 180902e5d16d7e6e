"""`/v1/stream`'s fan-out: one reader per API process follows the live feed and every client of that process
reads from its memory, so 200 clients cost one blocking `XREAD` at a time, not 200.

`Fanout` keeps the newest `ring_size` entries it read, contiguous from where it started. A client whose position
(`Last-Event-ID`) is older than that ring catches up from Redis itself (`XREAD` without blocking, in pages) and
then joins the ring. So a client that reconnects gets every entry after its id that the feed still keeps, in
order, each once; entries the feed trimmed (`wikitide.keys.CHANGES_MAXLEN`) are announced by a `gap` event.

Written with `threading` only: under gunicorn's gevent worker those are gevent's (monkey-patched), elsewhere
real threads. The reader's only loop around the feed pauses `RETRY_SECONDS` after a failure; clients meanwhile
get heartbeats.
"""

from __future__ import annotations

import bisect
import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from api.filters import ChangeFilter
from api.ports import FeedEntry, FeedLog, feed_key
from wikitide.errors import DependencyUnavailable

logger = logging.getLogger(__name__)

# About 3 minutes of the live stream (~30 changes/s), a few MB per worker: older positions catch up from Redis.
RING_SIZE = 5_000
READ_COUNT = 1000
BLOCK_MS = 2000
RETRY_SECONDS = 1.0
CATCH_UP_PAGE = 500
ZERO = "0-0"


class Fanout:
    def __init__(self, log: FeedLog, *, ring_size: int = RING_SIZE, block_ms: int = BLOCK_MS) -> None:
        self._log = log
        self._ring: deque[FeedEntry] = deque()
        self._keys: deque[tuple[int, int]] = deque()
        self._ring_size = ring_size
        self._block_ms = block_ms
        self._cond = threading.Condition()
        # Entries with ids up to `_floor` are not all in the ring; `_tail` is the newest id read.
        self._floor: tuple[int, int] | None = None
        self._tail = ZERO
        self._thread: threading.Thread | None = None
        self._clients = 0
        self._start_lock = threading.Lock()

    def join(self) -> None:
        """Count one more client; the first starts the reader (again, after every client had left). Raises
        `DependencyUnavailable` when the feed cannot be read, counting nothing."""
        with self._start_lock:
            if self._thread is None:
                newest = self._log.bounds().newest
                with self._cond:
                    self._ring.clear()
                    self._keys.clear()
                    self._tail = newest or ZERO
                    self._floor = feed_key(self._tail)
                self._thread = threading.Thread(target=self._run, name="feed-reader", daemon=True)
                self._thread.start()
            self._clients += 1

    def leave(self) -> None:
        """Count one client fewer; the reader stops after its current read when none is left."""
        with self._start_lock:
            self._clients -= 1

    @property
    def tail(self) -> str:
        """The id of the newest entry read (`0-0` before any)."""
        return self._tail

    def _is_wanted(self) -> bool:
        with self._start_lock:
            if self._clients > 0:
                return True
            self._thread = None
            return False

    def _run(self) -> None:
        while self._is_wanted():
            try:
                entries = self._log.read(self._tail, READ_COUNT, self._block_ms)
            except DependencyUnavailable as exc:
                logger.warning("live feed reader: %s; again in %.0f s", exc, RETRY_SECONDS)
                time.sleep(RETRY_SECONDS)
                continue
            except Exception:  # the reader thread's outermost loop: log, pause, go on
                logger.exception("live feed reader failed; again in %.0f s", RETRY_SECONDS)
                time.sleep(RETRY_SECONDS)
                continue
            if entries:
                self._add(entries)

    def _add(self, entries: list[FeedEntry]) -> None:
        with self._cond:
            self._ring.extend(entries)
            self._keys.extend(entry.key for entry in entries)
            while len(self._ring) > self._ring_size:
                self._ring.popleft()
                self._floor = self._keys.popleft()
            self._tail = entries[-1].id
            self._cond.notify_all()

    def after(self, cursor: tuple[int, int]) -> list[FeedEntry] | None:
        """The ring's entries after `cursor`, oldest first; `None` when the ring cannot tell (older than it)."""
        with self._cond:
            if self._floor is None or cursor < self._floor:
                return None
            start = bisect.bisect_right(self._keys, cursor)
            return list(itertools.islice(self._ring, start, None))

    def wait(self, cursor: tuple[int, int], timeout: float) -> None:
        """Return when an entry after `cursor` was read, or after `timeout` seconds."""
        with self._cond:
            if feed_key(self._tail) <= cursor:
                self._cond.wait(timeout)


@dataclass(frozen=True)
class StreamOptions:
    heartbeat_seconds: float = 15.0
    # A connection ends after this long; the client reconnects with its Last-Event-ID and misses nothing. Bounds
    # how long one client holds a connection of a worker (EventStreams ends its connections after ~15 minutes).
    max_seconds: float = 3600.0
    retry_ms: int = 3000


def sse_events(
    fanout: Fanout,
    log: FeedLog,
    keep: ChangeFilter,
    last_event_id: str | None,
    options: StreamOptions = StreamOptions(),
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[str]:
    """The SSE text of one client: every change after `last_event_id` (after the newest when `None`) that `keep`
    matches, each with its feed id as `id:`.

    Call it before the response starts: the first `next()` checks the feed (raising `DependencyUnavailable`, which
    the route answers with 503). Heartbeats (`: heartbeat` comments with an `id:` line) keep proxies from closing a
    quiet connection and move the client's Last-Event-ID past changes its filter left out, so a reconnect does not
    scan them again."""
    fanout.join()
    try:
        cursor_id = fanout.tail if last_event_id is None else last_event_id
        preamble = f"retry: {options.retry_ms}\n\n"
        # Only a resuming client asks Redis anything here: a burst of new clients costs the feed nothing.
        kept = log.bounds() if last_event_id is not None else None
        oldest = kept.oldest if kept is not None and kept.is_trimmed else None
        if oldest is not None and feed_key(cursor_id) < feed_key(oldest):
            notice = {"after": last_event_id, "oldest_kept": oldest,
                      "message": "changes before oldest_kept are no longer kept; some after your id may be missing"}
            preamble += f"event: gap\ndata: {json.dumps(notice)}\n\n"
        yield preamble
        yield from _follow(fanout, log, keep, cursor_id, options, clock)
    finally:
        fanout.leave()


def _follow(
    fanout: Fanout, log: FeedLog, keep: ChangeFilter, cursor_id: str, options: StreamOptions,
    clock: Callable[[], float],
) -> Iterator[str]:
    cursor = feed_key(cursor_id)
    started = last_write = clock()
    while clock() - started < options.max_seconds:
        entries = fanout.after(cursor)
        if entries is None:
            try:
                entries = log.read(cursor_id, CATCH_UP_PAGE)
            except DependencyUnavailable:
                logger.warning("a stream client's catch-up read failed; ending its connection")
                return
        out = []
        for entry in entries:
            cursor, cursor_id = entry.key, entry.id
            if keep.matches(entry.doc):
                out.append(entry.frame)
        if out:
            last_write = clock()
            yield "".join(out)
            continue
        if clock() - last_write >= options.heartbeat_seconds:
            last_write = clock()
            yield f": heartbeat\nid: {cursor_id}\n\n"
            continue
        if not entries:
            fanout.wait(cursor, max(0.0, options.heartbeat_seconds - (clock() - last_write)))
