"""Redis clients, in one place: every one with connect and read timeouts and exactly one retry policy.

redis-py (8.x) retries a command by itself by default, 10 times with backoff on connection errors and
timeouts: against a Redis that accepts connections and never answers, one command would take 11 socket
timeouts. Where our own `retry.Policy` loop wraps the client, the client makes one attempt; where nothing
wraps it (the API), `retries` is its only policy.
"""

from __future__ import annotations

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from wikitide import retry


def make_redis(
    url: str,
    *,
    retries: int = 0,
    socket_timeout: float = retry.REDIS_SOCKET_TIMEOUT,
    connect_timeout: float = retry.REDIS_CONNECT_TIMEOUT,
    decode_responses: bool = False,
) -> redis.Redis:
    """A client whose commands fail after at most `retries` + 1 tries, each bounded by the timeouts (seconds).

    The client retries only a dropped connection (a restarted server, a stale pooled socket), never a timeout:
    a server that does not answer costs one `socket_timeout`, not one per try.
    """
    backoff = ExponentialWithJitterBackoff(cap=0.5, base=0.05) if retries else NoBackoff()
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(backoff, retries, supported_errors=(redis.ConnectionError,)),
        decode_responses=decode_responses,
    )
