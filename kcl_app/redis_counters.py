"""Redis adapter for the per-minute counters (ElastiCache in AWS). Counting is idempotent per change key.

Each change runs one Lua script that claims its key (`SET NX`) and, only when the claim is new, adds to the
minute buckets, the page ranking and the recent list, atomically: a redelivered change is a no-op, and a
crash can never leave a key claimed but uncounted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import redis

from kcl_app.handler import CounterUpdate
from wikitide import keys, retry
from wikitide.errors import DependencyUnavailable

_COUNT_ONCE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
local ttl = tonumber(ARGV[2])
for i = 8, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1])
  redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('EXPIRE', KEYS[3], ttl)
if ARGV[4] ~= '' then
  redis.call('ZINCRBY', KEYS[4], 1, ARGV[4])
  redis.call('ZINCRBY', KEYS[5], 1, ARGV[4])
  redis.call('EXPIRE', KEYS[4], ttl)
  redis.call('EXPIRE', KEYS[5], ttl)
end
local latest = redis.call('GET', KEYS[6])
if (not latest) or tonumber(latest) < tonumber(ARGV[3]) then
  redis.call('SET', KEYS[6], ARGV[3])
end
local limit = tonumber(ARGV[7])
redis.call('ZADD', KEYS[7], ARGV[5], ARGV[6])
redis.call('ZREMRANGEBYRANK', KEYS[7], 0, -limit - 1)
redis.call('ZADD', KEYS[8], ARGV[5], ARGV[6])
redis.call('ZREMRANGEBYRANK', KEYS[8], 0, -limit - 1)
return 1
"""

_TRANSIENT = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


class RedisCounterStore:
    def __init__(self, client: redis.Redis, *, attempts: int = 6, fast_retries: bool = False) -> None:
        self._client = client
        self._script = client.register_script(_COUNT_ONCE)
        self._attempts = attempts
        self._fast = fast_retries

    def apply(self, updates: Sequence[CounterUpdate]) -> int:
        def attempt() -> int:
            pipe = self._client.pipeline(transaction=False)
            for update in updates:
                self._script(keys=_keys_of(update), args=_args_of(update), client=pipe)
            return sum(int(result) for result in pipe.execute())

        return self._bounded(attempt)

    def count_rejected(self, reasons: Counter[str]) -> None:
        def attempt() -> None:
            pipe = self._client.pipeline(transaction=False)
            for reason, count in reasons.items():
                pipe.hincrby(keys.REJECTED, reason, count)
            pipe.execute()

        self._bounded(attempt)

    def _bounded(self, call: Any) -> Any:
        try:
            return retry.bounded(call, retry_on=_TRANSIENT, attempts=self._attempts, fast=self._fast)
        except (redis.RedisError, OSError) as exc:
            raise DependencyUnavailable(f"Redis failed after retries: {exc}") from exc


def _keys_of(update: CounterUpdate) -> list[str]:
    return [
        keys.seen_key(update.key),
        keys.counts_key(update.minute),
        keys.counts_key(update.minute, update.wiki),
        keys.pages_key(update.minute),
        keys.pages_key(update.minute, update.wiki),
        keys.LATEST_MINUTE,
        keys.recent_key(),
        keys.recent_key(update.wiki),
    ]


def _args_of(update: CounterUpdate) -> list[Any]:
    args: list[Any] = [
        keys.SEEN_TTL_SECONDS,
        keys.BUCKET_TTL_SECONDS,
        update.minute,
        update.page or "",
        update.event_ms,
        update.recent_json,
        keys.RECENT_LIMIT,
    ]
    for name, value in update.fields.items():
        args.extend((name, value))
    return args
