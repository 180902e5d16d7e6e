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
number of proxies in front, so the address comes from `X-Forwarded-For`). Counting is fixed-window, one Redis
round trip per request (`OneTripRedisStorage`: the count and the window's end come back from the increment that
counted the request, and its `X-RateLimit-*` headers are made from them). When Redis cannot be reached, each
process counts in its own memory until it can (`in_memory_fallback_enabled`), so a Redis outage never turns into
refused requests: the API answers from DynamoDB then. A refused request gets 429 in JSON with `Retry-After`.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, jsonify
from flask_limiter import HeaderNames, Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits.storage import RedisStorage

# One attempt per count, bounded by these (seconds): a hung Redis costs a request this much, then the fallback.
REDIS_TIMEOUT_SECONDS = 0.5
SCHEME_PREFIX = "wikitide+"


class OneTripRedisStorage(RedisStorage):
    """limits' Redis storage, with the count and the window's end of a key read in the same round trip that
    increments it.

    Flask-Limiter counts a request with `incr`, then makes its headers from `get` and `get_expiry` of the same key:
    three round trips. Measured with `benchmarks/api_load.py` (README, API benchmark): one round trip instead of
    three served kept answers 1.06-1.53x as fast.
    Here the increment's Lua script returns the count and the key's remaining time, and the two reads that follow it
    in the same thread (under gunicorn's gevent worker, the same greenlet: `threading.local` is patched) answer from
    them: the count this request made, which is what its headers should say. A read of any other key, or one
    not right after an increment (older than `FRESH_SECONDS`), goes to Redis as before.

    Registered for `wikitide+redis://` and `wikitide+rediss://`; the rest of the URI is Redis's own.
    """

    STORAGE_SCHEME = [f"{SCHEME_PREFIX}redis", f"{SCHEME_PREFIX}rediss"]
    FRESH_SECONDS = 1.0
    SCRIPT_INCR_TTL = """
local current = redis.call("incrby", KEYS[1], ARGV[2])
if tonumber(current) == tonumber(ARGV[2]) then
    redis.call("expire", KEYS[1], ARGV[1])
end
return {current, redis.call("pttl", KEYS[1])}
"""

    def __init__(self, uri: str, **options: Any) -> None:
        self._counted = threading.local()
        super().__init__(uri.removeprefix(SCHEME_PREFIX), **options)

    def initialize_storage(self, uri: str) -> None:
        super().initialize_storage(uri)
        self.lua_incr_ttl = self.get_connection().register_script(self.SCRIPT_INCR_TTL)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        count, ttl_ms = self.lua_incr_ttl([self.prefixed_key(key)], [expiry, amount])
        self._counted.entry = (key, int(count), time.time() + max(int(ttl_ms), 0) / 1000, time.monotonic())
        return int(count)

    def get(self, key: str) -> int:
        entry = self._fresh(key)
        return entry[1] if entry is not None else super().get(key)

    def get_expiry(self, key: str) -> float:
        entry = self._fresh(key)
        if entry is None:
            return super().get_expiry(key)
        self._counted.entry = None  # the headers are made: the next request counts afresh
        return entry[2]

    def _fresh(self, key: str) -> tuple[str, int, float, float] | None:
        entry: tuple[str, int, float, float] | None = getattr(self._counted, "entry", None)
        if entry is None or entry[0] != key or time.monotonic() - entry[3] > self.FRESH_SECONDS:
            return None
        return entry


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
    return SCHEME_PREFIX + url, tuple(options.items())


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
