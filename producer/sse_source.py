"""EventStreams client: an endless iterator of SSE events that reconnects with `Last-Event-ID`.

sseclient reconnects by itself when a stream ends (honouring `retry:` and dropping a half-received frame);
HTTP errors and timeouts surface here and are retried with capped exponential backoff and jitter. 400 and
403 are configuration errors (a 403 is EventStreams' User-Agent policy) and stop the producer.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import requests
import sseclient

from wikitide.errors import ConfigError

logger = logging.getLogger(__name__)

FATAL_STATUSES = frozenset({400, 401, 403, 404})


@dataclass(frozen=True, slots=True)
class SourceEvent:
    data: str
    id: str | None


def read_events(
    url: str,
    user_agent: str,
    *,
    last_event_id: str | None = None,
    read_timeout: float = 60.0,
    max_delay: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[SourceEvent]:
    """Yield every `message` event, forever (until `should_stop`); resumes after the last id it yielded."""
    session = requests.Session()
    session.headers["User-Agent"] = user_agent
    failures = 0
    last_id = last_event_id
    while not should_stop():
        try:
            client = sseclient.SSEClient(url, last_id=last_id, session=session, timeout=(5, read_timeout))
            failures = 0
            for message in client:
                if message.id:
                    last_id = message.id
                if message.event == "message" and message.data:
                    yield SourceEvent(data=message.data, id=message.id or last_id)
                if should_stop():
                    return
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status in FATAL_STATUSES:
                hint = " (EventStreams requires a descriptive User-Agent with a contact)" if status == 403 else ""
                raise ConfigError(f"{url} answered HTTP {status}{hint}; not retrying") from exc
            cause = f"HTTP {status}"
        except (requests.RequestException, OSError) as exc:
            cause = type(exc).__name__
        failures += 1
        delay = min(max_delay, 0.5 * 2 ** min(failures, 10)) * random.uniform(0.5, 1.0)
        logger.warning("SSE connection to %s lost (%s); reconnect %d in %.1fs", url, cause, failures, delay)
        sleep(delay)
