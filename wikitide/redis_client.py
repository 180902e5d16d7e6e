"""Redis clients, in one place: every one with connect and read timeouts and exactly one retry policy.

redis-py (8.x) retries a command by itself by default, 10 times with backoff on connection errors and
timeouts: against a Redis that accepts connections and never answers, one command would take 11 socket
timeouts. Where our own `retry.Policy` loop wraps the client, the client makes one attempt; where nothing
wraps it (the API), `retries` is its only policy.

TLS: a `rediss://` URL connects with TLS 1.2 or later, verifying the server's certificate and host name
(ElastiCache with encryption in transit); `ca_file` adds a CA to trust. The password is the server's AUTH
(`requirepass`, an ElastiCache AUTH token).
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from wikitide import retry
from wikitide.errors import ConfigError
from wikitide.settings import Settings


def make_redis(
    url: str,
    *,
    retries: int = 0,
    socket_timeout: float = retry.REDIS_SOCKET_TIMEOUT,
    connect_timeout: float = retry.REDIS_CONNECT_TIMEOUT,
    decode_responses: bool = False,
    password: str | None = None,
    ca_file: str | None = None,
) -> redis.Redis:
    """A client whose commands fail after at most `retries` + 1 tries, each bounded by the timeouts (seconds).

    The client retries only a dropped connection (a restarted server, a stale pooled socket), never a timeout:
    a server that does not answer costs one `socket_timeout`, not one per try.
    """
    backoff = ExponentialWithJitterBackoff(cap=0.5, base=0.05) if retries else NoBackoff()
    options: dict[str, Any] = {}
    if password is not None:
        options["password"] = password
    if urlsplit(url).scheme == "rediss":
        options["ssl_min_version"] = ssl.TLSVersion.TLSv1_2
        if ca_file:
            options["ssl_ca_certs"] = ca_file
    elif ca_file:
        raise ConfigError(f"REDIS_TLS_CA_FILE is set but REDIS_URL is not a rediss:// (TLS) URL: {ca_file}")
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(backoff, retries, supported_errors=(redis.ConnectionError,)),
        decode_responses=decode_responses,
        **options,
    )


def connect(
    settings: Settings,
    *,
    retries: int = 0,
    socket_timeout: float = retry.REDIS_SOCKET_TIMEOUT,
    connect_timeout: float = retry.REDIS_CONNECT_TIMEOUT,
    decode_responses: bool = False,
) -> redis.Redis:
    """`make_redis` for the settings' Redis: its URL (required), its password and its CA file."""
    return make_redis(
        settings.require_redis_url(),
        retries=retries,
        socket_timeout=socket_timeout,
        connect_timeout=connect_timeout,
        decode_responses=decode_responses,
        password=settings.redis_password,
        ca_file=settings.redis_ca_file,
    )
