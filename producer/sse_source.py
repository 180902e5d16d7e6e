"""EventStreams client: an endless iterator of SSE events that reconnects with `Last-Event-ID`.

Frames are parsed by `producer.sse_frames` (the SSE specification's rules, with a size limit: a hostile line
or frame is never held in memory whole). Every drop, timeout, 429 and 5xx is retried with capped exponential
backoff and jitter, never sooner than the server asked (`retry:`, `Retry-After`); the next connection resumes
after the last event yielded. 400, 401, 403 and 404 are configuration errors (a 403 is EventStreams'
User-Agent policy) and stop the producer with a clear message, as does a redirect from https to http.
Redirects are followed here rather than by httpx, so a redirect's body is never read.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

import httpx

from producer.sse_frames import DEFAULT_MAX_FRAME_BYTES, EndlessFrame, FrameReader
from wikitide.errors import ConfigError, DependencyUnavailable

logger = logging.getLogger(__name__)

FATAL_STATUSES = frozenset({400, 401, 403, 404})
DEFAULT_RETRY_MS = 3000
USER_AGENT_HINT = " (EventStreams requires a descriptive User-Agent with a contact: set WIKITIDE_CONTACT)"
MAX_REDIRECTS = 5


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """One `message` event. `rejected` names why a frame was refused while reading (its data is then empty)."""

    data: bytes
    id: str | None
    connection: int = 0  # which connection of this reader brought it: 0, then one more per reconnect
    rejected: str | None = None


class SourceFailure(Exception):
    """One connection that brought nothing usable (a wrong content type, too many redirects)."""


@dataclass
class ReconnectPolicy:
    """Backoff between reconnects. Every connection eventually ends (EventStreams closes each after about
    15 minutes), so reconnecting is normal; only `max_failures` consecutive failures without an event in
    between (about 20 minutes at the cap) give up, so a supervisor restarts the producer and says so."""

    base: float = 0.5
    max_delay: float = 30.0
    max_failures: int = 40

    def delay(self, failures: int, server_hint: float | None) -> float:
        backoff = min(self.max_delay, self.base * 2 ** min(failures, 10)) * random.uniform(0.5, 1.0)
        return min(self.max_delay, max(backoff, server_hint or 0.0))


def with_since(url: str, since: datetime | None) -> str:
    if since is None:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urlencode({'since': since.strftime('%Y-%m-%dT%H:%M:%SZ')})}"


def read_events(
    url: str,
    user_agent: str,
    *,
    last_event_id: str | None = None,
    since: datetime | None = None,
    read_timeout: float = 60.0,
    policy: ReconnectPolicy | None = None,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    sleep: Callable[[float], None] = time.sleep,
    should_stop: Callable[[], bool] = lambda: False,
    should_pause: Callable[[], bool] = lambda: False,
    pause_poll: float = 0.5,
) -> Iterator[SourceEvent]:
    """Yield every `message` event until `should_stop`; every reconnect resumes after the last id yielded.

    While `should_pause()` is true no connection is open: it is checked before each connection and before the frames
    of each chunk read, and a pause closes the connection without yielding that chunk's frames; resuming reconnects
    after the last id yielded, so a pause loses and repeats nothing. A pause is not a failure.

    A frame over `max_frame_bytes` is yielded as rejected (no data), with its id when it had one: the position
    moves past it like any other event. `since` applies only to a first start (no `last_event_id`);
    EventStreams ignores it once an id is sent.
    """
    policy = policy or ReconnectPolicy()
    timeout = httpx.Timeout(5.0, read=read_timeout)
    failures = 0
    connection = -1
    last_id = last_event_id
    retry_ms = DEFAULT_RETRY_MS
    headers = {"User-Agent": user_agent, "Accept": "text/event-stream", "Cache-Control": "no-store"}
    with httpx.Client(headers=headers, timeout=timeout, follow_redirects=False) as client:
        while not should_stop():
            if should_pause():
                sleep(pause_poll)
                continue
            hint: float | None = retry_ms / 1000
            resume = {"Last-Event-ID": last_id} if last_id else {}
            try:
                target = url if last_id else with_since(url, since)
                with _follow_redirects(client, target, resume) as response:
                    status = response.status_code
                    if status in FATAL_STATUSES:
                        why = USER_AGENT_HINT if status == 403 else ""
                        raise ConfigError(f"{url} answered HTTP {status}{why}; not retrying")
                    if status >= 400:
                        cause = f"HTTP {status}"
                        hint = _retry_after(response) or hint
                    else:
                        _check_content_type(response)
                        connection += 1
                        reader = FrameReader(max_frame_bytes)
                        for chunk in response.iter_bytes():
                            if should_pause():
                                logger.warning("paused (control): connection closed after id %s", last_id)
                                break
                            for frame in reader.feed(chunk):
                                failures = 0
                                last_id = frame.id or last_id
                                yield SourceEvent(frame.data, frame.id, connection, frame.rejected)
                            if reader.retry_ms is not None:
                                retry_ms = reader.retry_ms
                            if should_stop():
                                return
                            if reader.is_abandoned:
                                break
                        if should_pause():
                            continue
                        cause = "a frame over the size limit" if reader.is_abandoned else "stream ended"
                        hint = retry_ms / 1000
            except (httpx.HTTPError, SourceFailure, EndlessFrame) as exc:
                cause = f"{type(exc).__name__}: {exc}"[:160]
            failures += 1
            if failures >= policy.max_failures:
                raise DependencyUnavailable(f"{url}: {failures} reconnects in a row failed, the last with {cause}")
            delay = policy.delay(failures, hint)
            logger.warning("SSE connection to %s lost (%s); reconnect %d in %.1fs", url, cause, failures, delay)
            sleep(delay)


@contextlib.contextmanager
def _follow_redirects(client: httpx.Client, url: str, headers: dict[str, str]) -> Iterator[httpx.Response]:
    """The response at the end of at most `MAX_REDIRECTS` redirects; never from https down to http."""
    for _ in range(MAX_REDIRECTS + 1):
        with client.stream("GET", url, headers=headers) as response:
            if not response.has_redirect_location:
                yield response
                return
            try:
                target = response.url.join(response.headers["Location"])
            except httpx.InvalidURL as exc:
                raise SourceFailure(f"{response.url} redirects to an invalid URL") from exc
            if response.url.scheme == "https" and target.scheme != "https":
                raise ConfigError(f"{response.url} redirects to {target}: not following https down to http")
        url = str(target)
    raise SourceFailure(f"more than {MAX_REDIRECTS} redirects from {url}")


def _check_content_type(response: httpx.Response) -> None:
    content_type = response.headers.get("content-type", "").partition(";")[0]
    if "text/event-stream" not in content_type:
        raise SourceFailure(f"expected Content-Type text/event-stream, got {content_type[:80]!r}")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value else None
    except ValueError:
        return None
