"""Redis adapter of the read model (ElastiCache in AWS): the minute buckets the API reads, fed from the ledger.

Redis is a cache of DynamoDB's counter cells, never their owner. For each cell the mirror keeps the last
state it merged (`wt:s:<minute>`, field `<scope>|<shard>`) and adds to the buckets only the difference to a
newer state. Merging is therefore idempotent and order-free: a redelivered batch, two workers racing, or a
rebuild running beside live processors all converge on the ledger's numbers. When Redis comes back empty,
`rebuild` merges every cell of the last day from DynamoDB, then sets `wt:ready`; readers fall back to
DynamoDB until then.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from kcl_app import ledger
from kcl_app.handler import ProcessedChange, recent_json
from kcl_app.ledger import CellState
from wikitide import cells, keys, retry
from wikitide.errors import DependencyUnavailable

logger = logging.getLogger(__name__)

_MERGE = """
local function newer(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local old = redis.call('HGET', KEYS[1], ARGV[1])
local before = {}
if old then
  local state = cjson.decode(old)
  if not newer(ARGV[2], state.q) then return 0 end
  before = state.v
end
local kind = ARGV[3]
local ttl = tonumber(ARGV[4])
local now = {}
for i = 7, #ARGV, 2 do
  local name = ARGV[i]
  local value = tonumber(ARGV[i + 1])
  now[name] = value
  local delta = value - (tonumber(before[name]) or 0)
  if delta ~= 0 then
    if kind == 'pages' then
      redis.call('ZINCRBY', KEYS[2], delta, ARGV[5])
      redis.call('ZINCRBY', KEYS[3], delta, ARGV[5])
    else
      redis.call('HINCRBY', KEYS[2], name, delta)
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({q = ARGV[2], v = now}))
redis.call('EXPIRE', KEYS[1], ttl)
if kind ~= 'rejected' then
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('EXPIRE', KEYS[3], ttl)
end
if kind == 'total' then
  local latest = redis.call('GET', KEYS[4])
  if (not latest) or tonumber(latest) < tonumber(ARGV[6]) then
    redis.call('SET', KEYS[4], ARGV[6])
  end
end
return 1
"""

_TRANSIENT = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
MERGE_CHUNK = 500


class RedisMirror:
    def __init__(
        self,
        client: redis.Redis,
        *,
        on_empty: Callable[[], None] | None = None,
        attempts: int | None = None,
        fast_retries: bool = False,
    ) -> None:
        self._client = client
        self._merge = client.register_script(_MERGE)
        self._on_empty = on_empty
        self._attempts = attempts
        self._fast = fast_retries

    def publish(self, states: Sequence[CellState], changes: Sequence[ProcessedChange]) -> None:
        def attempt() -> bool:
            pipe = self._client.pipeline(transaction=False)
            pipe.exists(keys.READY)
            self._queue_merges(pipe, states)
            for change in changes:
                self._queue_recent(pipe, change)
            return bool(pipe.execute()[0])

        is_ready = self._bounded(attempt)
        if not is_ready and self._on_empty is not None:
            self._on_empty()

    def merge(self, states: Sequence[CellState]) -> int:
        """Merge states; returns how many moved a cell forward."""

        def attempt() -> int:
            pipe = self._client.pipeline(transaction=False)
            self._queue_merges(pipe, states)
            return sum(int(result) for result in pipe.execute())

        return int(self._bounded(attempt))

    def _queue_merges(self, pipe: Any, states: Sequence[CellState]) -> None:
        for state in states:
            keys_, args = merge_call(state)
            self._merge(keys=keys_, args=args, client=pipe)

    @staticmethod
    def _queue_recent(pipe: Any, item: ProcessedChange) -> None:
        score = int(item.change.dt.timestamp() * 1000)
        member = recent_json(item)
        for key in (keys.recent_key(), keys.recent_key(item.change.wiki)):
            pipe.zadd(key, {member: score})
            pipe.zremrangebyrank(key, 0, -keys.RECENT_LIMIT - 1)

    def _bounded(self, call: Any) -> Any:
        try:
            return retry.bounded(
                call, retry_on=_TRANSIENT, policy=retry.PROCESSOR_REDIS, attempts=self._attempts, fast=self._fast
            )
        except (redis.RedisError, OSError) as exc:
            raise DependencyUnavailable(f"Redis failed after retries: {exc}") from exc


def merge_call(state: CellState) -> tuple[list[str], list[Any]]:
    minute, scope = state.cell.minute, state.cell.scope
    page = ""
    if scope == ledger.TOTAL:
        kind, targets = "total", [keys.counts_key(minute)] * 2
    elif scope == ledger.REJECTED:
        kind, targets = "rejected", [keys.REJECTED] * 2
    elif scope.startswith(cells.WIKI_PREFIX):
        kind, targets = "wiki", [keys.counts_key(minute, cells.wiki_of(scope))] * 2
    else:
        page = cells.page_of(scope)
        wiki, _ = keys.split_page_member(page)
        kind, targets = "pages", [keys.pages_key(minute), keys.pages_key(minute, wiki)]
    args: list[Any] = [f"{scope}|{state.shard}", str(state.sequence), kind, keys.BUCKET_TTL_SECONDS, page, minute]
    for name, value in state.values.items():
        args.extend((name, value))
    return [keys.cell_states_key(minute), *targets, keys.LATEST_MINUTE], args


def recent_cells(states: Sequence[CellState]) -> list[CellState]:
    """The cells the read model keeps: those within the bucket lifetime of the newest minute counted (event
    time, as the API's windows are; a replay of old events is rebuilt too)."""
    newest = max((s.cell.minute for s in states if s.cell.scope == ledger.TOTAL), default=None)
    if newest is None:
        return [s for s in states if s.cell.scope == ledger.REJECTED]
    oldest = newest - keys.BUCKET_TTL_SECONDS // 60
    return [s for s in states if s.cell.minute >= oldest or s.cell.scope == ledger.REJECTED]


class Rebuilder:
    """Refills an empty Redis from the ledger, once at a time across the fleet (a lock in Redis itself)."""

    LOCK_SECONDS = 120

    def __init__(
        self,
        client: redis.Redis,
        mirror: RedisMirror,
        scan: Callable[[], Sequence[CellState]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._mirror = mirror
        self._scan = scan
        self._clock = clock
        self._running = threading.Lock()

    def start_in_background(self) -> None:
        """Called on every batch while Redis is not ready: starts at most one rebuild thread per process."""
        if self._running.acquire(blocking=False):
            threading.Thread(target=self._run_and_release, name="redis-rebuild", daemon=True).start()

    def _run_and_release(self) -> None:
        try:
            self.rebuild()
        except Exception:  # a background thread's outermost loop: the next batch starts another attempt
            logger.exception("rebuild of the Redis counters failed; the next batch retries")
        finally:
            self._running.release()

    def rebuild(self) -> int | None:
        """Merge every cell of the last day into Redis, then mark it ready. None if another process holds the lock."""
        # redis-py's lock: a token per holder, released and extended only by that holder, atomically.
        lock = self._client.lock(keys.REBUILD_LOCK, timeout=self.LOCK_SECONDS)
        if not lock.acquire(blocking=False):
            return None
        started = self._clock()
        try:
            states = recent_cells(self._scan())
            moved = 0
            for start in range(0, len(states), MERGE_CHUNK):
                moved += self._mirror.merge(states[start : start + MERGE_CHUNK])
                lock.reacquire()
            self._client.set(keys.READY, int(started))
            logger.warning(
                "Redis counters rebuilt from DynamoDB: %d cells read, %d merged, %.1f s",
                len(states), moved, self._clock() - started,
            )
            return moved
        finally:
            with contextlib.suppress(redis.exceptions.LockError):  # it expired: another rebuild may be running
                lock.release()
