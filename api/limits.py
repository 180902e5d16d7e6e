"""Per-client rate limits on every endpoint (Flask-Limiter), counted in the API's own Redis so that every worker
and every API task share one count per client.

Three classes, each in flask-limiter's notation and each `off`-able (`wikitide.settings`):
- queries (`WIKITIDE_RATE_LIMIT_QUERIES`, default `100/second`): each endpoint not named below, counted per client
  and endpoint (the dashboard's files and `/health` included);
- stream (`WIKITIDE_RATE_LIMIT_STREAM`, default `30/minute`): opening `/v1/stream` connections per client (a connection,
  once open, is not counted again);
- control (`WIKITIDE_RATE_LIMIT_CONTROL`, default `60/minute`): each `/v1/control/*` endpoint, counted before the
  token check, so guessing tokens is slow too.

A client is its address (`request.remote_addr`; behind a load balancer set `WIKITIDE_TRUSTED_PROXIES` to the
number of proxies in front, so the address comes from `X-Forwarded-For`). Counting is fixed-window: one Redis
round trip per request. When Redis cannot be reached, each process counts in its own memory until it can
(`in_memory_fallback_enabled`), so a Redis outage never turns into refused requests: the API answers from DynamoDB
then. A refused request gets 429 in JSON with `Retry-After`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, jsonify
from flask_limiter import HeaderNames, Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address

# One attempt per count, bounded by these (seconds): a hung Redis costs a request this much, then the fallback.
REDIS_TIMEOUT_SECONDS = 0.5


@dataclass(frozen=True)
class RateLimits:
    queries: str = "100/second"
    stream: str = "30/minute"
    control: str = "60/minute"
    storage_uri: str = "memory://"
    storage_options: tuple[tuple[str, Any], ...] = ()


def redis_storage(url: str, password: str | None, ca_file: str | None) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """The storage URI and options of the API's Redis (its URL, password and CA as `wikitide.redis_client` uses
    them), with one attempt per command."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options: dict[str, Any] = {"socket_timeout": REDIS_TIMEOUT_SECONDS, "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
                               "retry": Retry(NoBackoff(), 0)}
    if password is not None:
        options["password"] = password
    if ca_file:
        options["ssl_ca_certs"] = ca_file
    return url, tuple(options.items())


def install(app: Flask, limits: RateLimits, *, stream: Blueprint, control: Blueprint) -> Limiter:
    """Count every request of `app` against its class's limit."""
    limiter = Limiter(
        get_remote_address,
        app=app,
        default_limits=[limits.queries] if limits.queries != "off" else [],
        storage_uri=limits.storage_uri,
        storage_options=dict(limits.storage_options),
        strategy="fixed-window",
        headers_enabled=True,
        swallow_errors=True,
        in_memory_fallback_enabled=True,
        key_prefix="wt:limits",
        # Flask-Limiter sets Retry-After on every answer (and moves a 503's own Retry-After): under its own name
        # here; a 429 gets the standard header from `_refused`.
        header_name_mapping={HeaderNames.RETRY_AFTER: "X-RateLimit-Retry-After"},
    )
    for blueprint, rate in ((stream, limits.stream), (control, limits.control)):
        if rate == "off":
            limiter.exempt(blueprint)
        else:
            limiter.limit(rate)(blueprint)

    @app.errorhandler(RateLimitExceeded)
    def _refused(exc: RateLimitExceeded) -> tuple[Response, int]:
        response = jsonify({"error": f"rate limit exceeded ({exc.description} per client); retry after the "
                                     f"Retry-After seconds"})
        current = limiter.current_limit
        response.headers["Retry-After"] = str(max(1, math.ceil(current.reset_at - time.time())) if current else 1)
        return response, 429

    return limiter
