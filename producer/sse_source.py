"""EventStreams client: an endless iterator of SSE events that reconnects with `Last-Event-ID`.

Frames are parsed by httpx-sse, which follows the SSE specification (UTF-8, lines end only at CR/LF, a
frame cut off by a dropped connection is discarded). Every drop, timeout, 429 and 5xx is retried with
capped exponential backoff and jitter, never sooner than the server asked (`retry:`, `Retry-After`);
the next connection resumes after the last event yielded. 400, 401, 403 and 404 are configuration
errors (a 403 is EventStreams' User-Agent policy) and stop the producer with a clear message.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

import httpx
from httpx_sse import SSEError, connect_sse

from wikitide.errors import ConfigError, DependencyUnavailable

logger = logging.getLogger(__name__)

FATAL_STATUSES = frozenset({400, 401, 403, 404})
DEFAULT_RETRY_MS = 3000
USER_AGENT_HINT = " (EventStreams requires a descriptive User-Agent with a contact: set WIKITIDE_CONTACT)"


@dataclass(frozen=True, slots=True)
class SourceEvent:
    data: str
    id: str | None
    connection: int = 0  # which connection of this reader brought it: 0, then one more per reconnect


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
    sleep: Callable[[float], None] = time.sleep,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[SourceEvent]:
    """Yield every `message` event until `should_stop`; every reconnect resumes after the last id yielded.

    `since` applies only to a first start (no `last_event_id`); EventStreams ignores it once an id is sent.
    """
    policy = policy or ReconnectPolicy()
    timeout = httpx.Timeout(5.0, read=read_timeout)
    failures = 0
    connection = -1
    last_id = last_event_id
    retry_ms = DEFAULT_RETRY_MS
    with httpx.Client(headers={"User-Agent": user_agent}, timeout=timeout, follow_redirects=True) as client:
        while not should_stop():
            hint: float | None = retry_ms / 1000
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                target = url if last_id else with_since(url, since)
                with connect_sse(client, "GET", target, headers=headers) as source:
                    status = source.response.status_code
                    if status in FATAL_STATUSES:
                        why = USER_AGENT_HINT if status == 403 else ""
                        raise ConfigError(f"{url} answered HTTP {status}{why}; not retrying")
                    if status >= 400:
                        cause = f"HTTP {status}"
                        hint = _retry_after(source.response) or hint
                    else:
                        connection += 1
                        for sse in source.iter_sse():
                            if sse.retry is not None:
                                retry_ms = sse.retry
                            if sse.data and sse.event in ("", "message"):
                                failures = 0
                                last_id = sse.id or last_id
                                yield SourceEvent(data=sse.data, id=sse.id or None, connection=connection)
                            if should_stop():
                                return
                        cause = "stream ended"
                        hint = retry_ms / 1000
            except (httpx.HTTPError, SSEError) as exc:
                cause = f"{type(exc).__name__}: {exc}"[:160]
            failures += 1
            if failures >= policy.max_failures:
                raise DependencyUnavailable(f"{url}: {failures} reconnects in a row failed, the last with {cause}")
            delay = policy.delay(failures, hint)
            logger.warning("SSE connection to %s lost (%s); reconnect %d in %.1fs", url, cause, failures, delay)
            sleep(delay)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value else None
    except ValueError:
        return None
