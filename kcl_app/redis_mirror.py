"""Redis adapter of the read model (ElastiCache in AWS): the minute buckets the API reads, fed from DynamoDB's
counter cells and claimed changes.

Redis is a cache, never the owner. For each counter cell the mirror keeps the last state it merged
(`wt:s:<minute>`, field `<scope>|<shard>`) and adds to the buckets only the difference to a newer state: merging is
idempotent and order-free. Page edits have no cells (`kcl_app/ledger.py`): each batch's claimed revisions are counted
per (minute, shard) above a mark of Redis's own (`_PAGES`, field `p|<shard>`), which is exact because a shard's
batches are published in order. A redelivered batch, two workers racing, or a rebuild running beside live
processors all converge on DynamoDB's numbers. When Redis comes back empty, `rebuild` merges every cell of the last
day from DynamoDB and counts the claimed revisions the live publishes did not, then sets `wt:ready`; readers fall
back to DynamoDB until then.

The rolling windows (`wikitide.keys.ROLLING_WINDOWS`: page counts of the last hour and day, kept as they slide)
hold, by construction, the sum of the minute page sets of the minutes `start..end` of their range hash: counting a
page edit adds it to a window only when its minute is inside that range, and `_ADVANCE` moves the range one minute
at a time, adding the minute that enters and subtracting the one that leaves, each step atomic. Both run inside
Redis scripts, so redelivered batches, racing workers and a rebuild keep that sum exact. Each `_ADVANCE` call does
a bounded number of steps; `advance_windows` calls it until the windows end at the newest minute.

The same scripts keep the roll-ups of `wikitide.keys`: a page edit also goes to its hour's page set, a wiki cell's
`WIKI_FIELDS` differences to the minute's wikis hash and to each rolling window's wiki counts hash whose range holds
the minute; `_ADVANCE` slides those hashes with the page windows (adding the entering minute's wikis hash,
subtracting the leaving one's). They are exactly once and come back with a rebuild like the minute buckets.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis

from kcl_app import change_feed, ledger
from kcl_app.handler import ProcessedChange, page_edits_of, recent_json, recent_score
from kcl_app.ledger import CellState, PageEdit
from wikitide import cells, keys, retry
from wikitide.errors import DependencyUnavailable

logger = logging.getLogger(__name__)

# KEYS[1] = cell states, KEYS[2..3] = the cell's buckets, KEYS[4] = newest minute, KEYS[5] = the cell's roll-up
# (wiki: the minute's wikis hash), KEYS[6..] = per rolling window, its range and the window's wiki counts hash (wiki).
# ARGV[1] = field, ARGV[2] = sequence, ARGV[3] = kind, ARGV[4] = TTL, ARGV[5] = unused, ARGV[6] = minute,
# ARGV[7] = wiki (wiki), ARGV[8..] = counter name, value, ...
_MERGE = """
local function newer(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local rolled = {ROLLED}
local old = redis.call('HGET', KEYS[1], ARGV[1])
local before = {}
if old then
  local state = cjson.decode(old)
  if not newer(ARGV[2], state.q) then return 0 end
  before = state.v
end
local kind = ARGV[3]
local ttl = tonumber(ARGV[4])
local minute = tonumber(ARGV[6])
local now = {}
local wiki_deltas = {}
for i = 8, #ARGV, 2 do
  local name = ARGV[i]
  local value = tonumber(ARGV[i + 1])
  now[name] = value
  local delta = value - (tonumber(before[name]) or 0)
  if delta ~= 0 then
    redis.call('HINCRBY', KEYS[2], name, delta)
    if kind == 'wiki' and rolled[name] then
      local field = ARGV[7] .. '|' .. name
      redis.call('HINCRBY', KEYS[5], field, delta)
      wiki_deltas[#wiki_deltas + 1] = {field, delta}
    end
  end
end
local function in_range(k)
  local range = redis.call('HMGET', KEYS[k], 'start', 'end')
  local first, last = tonumber(range[1]), tonumber(range[2])
  return first and last and first <= minute and minute <= last
end
if #wiki_deltas > 0 then
  redis.call('EXPIRE', KEYS[5], ttl)
  for k = 6, #KEYS, 2 do
    if in_range(k) then
      for _, pair in ipairs(wiki_deltas) do
        if redis.call('HINCRBY', KEYS[k + 1], pair[1], pair[2]) == 0 then redis.call('HDEL', KEYS[k + 1], pair[1]) end
      end
      redis.call('EXPIRE', KEYS[k + 1], ttl)
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
  if (not latest) or tonumber(latest) < minute then
    redis.call('SET', KEYS[4], ARGV[6])
  end
end
return 1
""".replace("{ROLLED}", "{" + ", ".join(f"{name} = true" for name in keys.WIKI_FIELDS) + "}")

# The page edits of one (minute, shard) cell, counted from the claimed revisions (`kcl_app/ledger.py`). The cell's
# state (field `p|<shard>` of the minute's cell states) holds `q`, the sequence number of the last edit counted live,
# and `f`, the first one counted live since Redis was empty ('' once a rebuild has filled in what came before it).
# Mode 'live' (a batch's edits of the cell, in sequence order): counts the edits above `q`. A shard publishes its
# batches in order (the KCL redelivers from a checkpoint that a publish preceded), so what is at or below `q` was
# counted.
# Mode 'rebuild' (the claims of the cell the rebuild read, in sequence order, in chunks: ARGV[6] this chunk's index,
# ARGV[7] the cell's chunk count): a cell Redis has not seen gets the edits at or below ARGV[5], the DynamoDB total
# cell's mark read before the claims (every one of them was stored before the mark moved; live publishes count those
# above it: `q` starts there); a cell live publishes began after Redis was emptied gets the edits below its `f`
# (published before Redis was emptied, so stored before the rebuild read them). The first chunk fixes that bound
# (`b`, inclusive when `bi` is 1); a chunk counts only when it is the next one (`n`), so a chunk is counted once
# whoever sends it, and a rebuild that stopped half way is finished by the next one (the edits within the bound are
# the same prefix of every later read, and chunks are cut the same way). After the last chunk `f` is ''.
# KEYS[1] = cell states, KEYS[2] = the minute's page set, KEYS[3] = the hour's page set, KEYS[4..] = per rolling
# window, its range, its page set and the set of its per-wiki keys. ARGV[1] = field, ARGV[2] = mode, ARGV[3] = TTL,
# ARGV[4] = minute, ARGV[5..7] = rebuild's mark, chunk index and count, ARGV[8] = the minute's per-wiki page set
# prefix, ARGV[9..] = per rolling window its per-wiki page set prefix, then the edits: sequence, wiki, title, ...
_PAGES = """
local function newer(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local field, mode, ttl, minute = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local windows = (#KEYS - 3) / 3
local first_edit = 9 + windows
local old = redis.call('HGET', KEYS[1], field)
local state = old and cjson.decode(old)
local counts, pages = {}, {}
local function take(i)
  local page = ARGV[i + 1] .. '\t' .. ARGV[i + 2]
  if not counts[page] then
    counts[page] = 0
    pages[#pages + 1] = {ARGV[i + 1], ARGV[i + 2], page}
  end
  counts[page] = counts[page] + 1
end
if mode == 'live' then
  local last = state and state.q
  for i = first_edit, #ARGV, 3 do
    if (not last) or newer(ARGV[i], last) then
      take(i)
      last = ARGV[i]
      if not state then state = {f = ARGV[i]} end
    end
  end
  if #pages == 0 then return 0 end
  state.q = last
else
  if state and state.f == '' then return 0 end
  if not state then
    if ARGV[5] == '' then return 0 end
    state = {q = ARGV[5], b = ARGV[5], bi = 1, n = 0}
  elseif not state.b then
    state.b, state.bi, state.n = state.f, 0, 0
  end
  if tonumber(ARGV[6]) ~= state.n then return 0 end
  for i = first_edit, #ARGV, 3 do
    if newer(state.b, ARGV[i]) or (state.bi == 1 and ARGV[i] == state.b) then take(i) end
  end
  state.n = state.n + 1
  if state.n >= tonumber(ARGV[7]) then
    state.f, state.b, state.bi, state.n = '', nil, nil, nil
  end
end
local open = {}
for k = 4, #KEYS, 3 do
  local range = redis.call('HMGET', KEYS[k], 'start', 'end')
  local first, last = tonumber(range[1]), tonumber(range[2])
  if first and last and first <= minute and minute <= last then open[#open + 1] = k end
end
local touched = {[KEYS[2]] = true, [KEYS[3]] = true}
for _, entry in ipairs(pages) do
  local wiki, title, page = entry[1], entry[2], entry[3]
  local n = counts[page]
  local wiki_key = ARGV[8] .. wiki
  redis.call('ZINCRBY', KEYS[2], n, page)
  redis.call('ZINCRBY', wiki_key, n, page)
  redis.call('ZINCRBY', KEYS[3], n, page)
  touched[wiki_key] = true
  local member = title .. '\t' .. wiki
  for _, k in ipairs(open) do
    local window_wiki = ARGV[9 + (k - 4) / 3] .. wiki
    redis.call('ZINCRBY', KEYS[k + 1], n, member)
    redis.call('ZINCRBY', window_wiki, n, member)
    redis.call('SADD', KEYS[k + 2], window_wiki)
    touched[KEYS[k + 1]] = true
    touched[KEYS[k + 2]] = true
    touched[window_wiki] = true
  end
end
if #pages > 0 then
  for key in pairs(touched) do redis.call('EXPIRE', key, ttl) end
end
redis.call('HSET', KEYS[1], field, cjson.encode(state))
redis.call('EXPIRE', KEYS[1], ttl)
return #pages
"""
PAGE_CHUNK = 500  # edits per `_PAGES` call: one call holds Redis for a few milliseconds at most

# One call moves a rolling window by at most ARGV[3] minutes and through at most ARGV[4] page entries (one minute
# is never split), so no call holds Redis for long; it returns how many minutes are left to the newest minute.
# KEYS[1] = range hash, KEYS[2] = window set, KEYS[3] = the set of its per-wiki window keys, KEYS[4] = newest
# minute, KEYS[5] = the window's wiki counts hash; ARGV[1] = window length, ARGV[2] = TTL, ARGV[5] = minute
# page-set key prefix, ARGV[6] = wiki window key prefix, ARGV[7] = minute wikis hash key prefix. A window left
# behind by more than its length starts again empty (its per-wiki sets are unlinked).
_ADVANCE = """
local latest = tonumber(redis.call('GET', KEYS[4]))
if not latest then return 0 end
local length = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local max_steps = tonumber(ARGV[3])
local budget = tonumber(ARGV[4])
local range = redis.call('HMGET', KEYS[1], 'start', 'end')
local first, last = tonumber(range[1]), tonumber(range[2])
if (not last) or latest - last >= length then
  if last then
    for _, key in ipairs(redis.call('SMEMBERS', KEYS[3])) do redis.call('UNLINK', key) end
    redis.call('UNLINK', KEYS[2], KEYS[3], KEYS[5])
  end
  last = math.max(latest - length, last or 0)
  first = last + 1
end
local touched = {}
local spent = 0
local function apply(minute, sign)
  local flat = redis.call('ZRANGE', ARGV[5] .. minute, 0, -1, 'WITHSCORES')
  for i = 1, #flat, 2 do
    local page = flat[i]
    local tab = string.find(page, '\t', 1, true)
    local wiki = string.sub(page, 1, tab - 1)
    local member = string.sub(page, tab + 1) .. '\t' .. wiki
    local delta = sign * tonumber(flat[i + 1])
    local wiki_key = ARGV[6] .. wiki
    redis.call('ZINCRBY', KEYS[2], delta, member)
    redis.call('ZINCRBY', wiki_key, delta, member)
    touched[wiki_key] = true
  end
  local counts = redis.call('HGETALL', ARGV[7] .. minute)
  for i = 1, #counts, 2 do
    if redis.call('HINCRBY', KEYS[5], counts[i], sign * tonumber(counts[i + 1])) == 0 then
      redis.call('HDEL', KEYS[5], counts[i])
    end
  end
  spent = spent + #flat / 2 + #counts / 2
end
local steps = 0
while last < latest and steps < max_steps and spent < budget do
  last = last + 1
  steps = steps + 1
  apply(last, 1)
  if last - first + 1 > length then
    apply(first, -1)
    first = first + 1
  end
end
redis.call('HSET', KEYS[1], 'start', first, 'end', last)
redis.call('EXPIRE', KEYS[1], ttl)
if spent > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', 0)
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('EXPIRE', KEYS[5], ttl)
  for key in pairs(touched) do
    redis.call('ZREMRANGEBYSCORE', key, '-inf', 0)
    redis.call('EXPIRE', key, ttl)
    redis.call('SADD', KEYS[3], key)
  end
  redis.call('EXPIRE', KEYS[3], ttl)
end
return latest - last
"""
ADVANCE_STEPS = 120
ADVANCE_BUDGET = 20_000
# Enough calls to move a window from empty to full with room to spare; each call is bounded.
ADVANCE_CALLS = 1000

_TRANSIENT = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
MERGE_CHUNK = 500
PAGE_CALLS_PER_TRIP = 20


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
        self._pages = client.register_script(_PAGES)
        self._advance = client.register_script(_ADVANCE)
        self._append = client.register_script(change_feed.APPEND)
        self._on_empty = on_empty
        self._attempts = attempts
        self._fast = fast_retries

    def publish(self, states: Sequence[CellState], changes: Sequence[ProcessedChange]) -> None:
        self.count(states, page_edits_of(changes), changes)

    def count(
        self, states: Sequence[CellState], edits: Sequence[PageEdit], changes: Sequence[ProcessedChange] = ()
    ) -> None:
        """`publish` with the page edits given: merge `states`, count `edits` (one shard's in sequence order), list
        `changes` as recent, in one round trip."""

        def attempt() -> tuple[bool, bool]:
            pipe = self._client.pipeline(transaction=False)
            pipe.exists(keys.READY)
            self._queue_merges(pipe, states)
            for call_keys, args in page_calls(edits):
                self._pages(keys=call_keys, args=args, client=pipe)
            for change in changes:
                self._queue_recent(pipe, change)
            for call_keys, args in change_feed.append_calls(changes):
                self._append(keys=call_keys, args=args, client=pipe)
            self._queue_advances(pipe)
            results = execute_writes(pipe)
            return bool(results[0]), any(int(left) for left in results[-len(keys.ROLLING_WINDOWS):])

        is_ready, is_behind = self._bounded(attempt)
        if is_behind:
            self.advance_windows()
        if not is_ready and self._on_empty is not None:
            self._on_empty()

    def advance_windows(self) -> None:
        """Move every rolling window to the newest minute, in bounded steps (a window that starts empty needs a
        day of them)."""
        for _ in range(ADVANCE_CALLS):

            def attempt() -> bool:
                pipe = self._client.pipeline(transaction=False)
                self._queue_advances(pipe)
                return any(int(left) for left in execute_writes(pipe))

            if not self._bounded(attempt):
                return
        # Only a newest minute that keeps leaping ahead gets here; the next batch moves the windows further.
        logger.warning("rolling windows still behind the newest minute after %d bounded calls", ADVANCE_CALLS)

    def _queue_advances(self, pipe: Any) -> None:
        for length in keys.ROLLING_WINDOWS:
            self._advance(keys=advance_keys(length), args=advance_args(length), client=pipe)

    def merge(self, states: Sequence[CellState]) -> int:
        """Merge states; returns how many moved a cell forward."""

        def attempt() -> int:
            pipe = self._client.pipeline(transaction=False)
            self._queue_merges(pipe, states)
            return sum(int(result) for result in execute_writes(pipe))

        return int(self._bounded(attempt))

    def rebuild_pages(self, calls: Sequence[tuple[list[str], list[Any]]]) -> int:
        """Run rebuild `_PAGES` calls (`rebuild_page_calls`) in one round trip; returns the pages counted."""

        def attempt() -> int:
            pipe = self._client.pipeline(transaction=False)
            for call_keys, args in calls:
                self._pages(keys=call_keys, args=args, client=pipe)
            return sum(int(result) for result in execute_writes(pipe))

        return int(self._bounded(attempt))

    def _queue_merges(self, pipe: Any, states: Sequence[CellState]) -> None:
        for state in states:
            keys_, args = merge_call(state)
            self._merge(keys=keys_, args=args, client=pipe)

    @staticmethod
    def _queue_recent(pipe: Any, item: ProcessedChange) -> None:
        score = recent_score(item)
        member = keys.recent_member(item.key, recent_json(item))
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


def execute_writes(pipe: Any) -> list[Any]:
    """Run a pipeline of writes to the read model, then move `keys.DATA_VERSION`; returns the writes' results.
    Redis runs a pipeline's commands in order, so a reader that sees the new version sees every write before it."""
    pipe.incr(keys.DATA_VERSION)
    results: list[Any] = pipe.execute()
    return results[:-1]


def merge_call(state: CellState) -> tuple[list[str], list[Any]]:
    minute, scope = state.cell.minute, state.cell.scope
    extra = ""  # ARGV[7]: the wiki of a wiki cell
    windows: list[str] = []
    if scope == ledger.TOTAL:
        kind, targets = "total", [keys.counts_key(minute)] * 3
    elif scope == ledger.REJECTED:
        kind, targets = "rejected", [keys.REJECTED] * 3
    elif scope.startswith(cells.WIKI_PREFIX):
        wiki = cells.wiki_of(scope)
        kind, targets = "wiki", [keys.counts_key(minute, wiki)] * 2 + [keys.minute_wikis_key(minute)]
        extra = wiki
        for length in keys.ROLLING_WINDOWS:
            windows += [keys.window_range_key(length), keys.window_wiki_counts_key(length)]
    else:
        raise ValueError(f"not a counter cell scope: {scope!r}")
    args: list[Any] = [f"{scope}|{state.shard}", str(state.sequence), kind, keys.BUCKET_TTL_SECONDS, "", minute, extra]
    for name, value in state.values.items():
        args.extend((name, value))
    bucket, other_bucket, roll_up = targets
    return [keys.cell_states_key(minute), bucket, other_bucket, keys.LATEST_MINUTE, roll_up, *windows], args


def page_calls(edits: Sequence[PageEdit]) -> list[tuple[list[str], list[Any]]]:
    """The live `_PAGES` calls of a batch's edits: per (minute, shard) cell, its edits in their order, in runs of
    at most `PAGE_CHUNK`."""
    by_cell: dict[tuple[int, str], list[PageEdit]] = {}
    for edit in edits:
        by_cell.setdefault((edit.minute, edit.shard), []).append(edit)
    return [page_call(minute, shard, cell_edits[start : start + PAGE_CHUNK], "live")
            for (minute, shard), cell_edits in by_cell.items() for start in range(0, len(cell_edits), PAGE_CHUNK)]


def rebuild_page_calls(minute: int, shard: str, mark: int | None,
                       edits: Sequence[PageEdit]) -> list[tuple[list[str], list[Any]]]:
    """The rebuild's `_PAGES` calls of one cell: its edits in sequence order, cut into `PAGE_CHUNK`s the same way
    by every rebuild."""
    chunks = max(1, -(-len(edits) // PAGE_CHUNK))
    return [page_call(minute, shard, edits[i * PAGE_CHUNK : (i + 1) * PAGE_CHUNK], "rebuild", mark, i, chunks)
            for i in range(chunks)]


def page_call(
    minute: int, shard: str, edits: Sequence[PageEdit], mode: str, mark: int | None = None, chunk: int = 0,
    chunks: int = 1,
) -> tuple[list[str], list[Any]]:
    windows: list[str] = []
    prefixes: list[str] = []
    for length in keys.ROLLING_WINDOWS:
        windows += [keys.window_range_key(length), keys.window_pages_key(length), keys.window_wikis_key(length)]
        prefixes.append(keys.window_pages_key(length, ""))
    args: list[Any] = [page_field(shard), mode, keys.BUCKET_TTL_SECONDS, minute, "" if mark is None else str(mark),
                       chunk, chunks, keys.pages_key(minute, ""), *prefixes]
    for edit in edits:
        args.extend((str(edit.sequence), edit.wiki, edit.title))
    hour = minute // keys.HOUR_MINUTES
    return [keys.cell_states_key(minute), keys.pages_key(minute), keys.hour_pages_key(hour), *windows], args


def page_field(shard: str) -> str:
    """The field of a (minute, shard) page cell's state among the minute's cell states."""
    return f"p|{shard}"


def advance_keys(length: int) -> list[str]:
    return [keys.window_range_key(length), keys.window_pages_key(length), keys.window_wikis_key(length),
            keys.LATEST_MINUTE, keys.window_wiki_counts_key(length)]


def advance_args(length: int) -> list[Any]:
    wiki_prefix = keys.window_pages_key(length, "")
    return [length, keys.BUCKET_TTL_SECONDS, ADVANCE_STEPS, ADVANCE_BUDGET, keys.MINUTE_PAGES_PREFIX, wiki_prefix,
            keys.MINUTE_WIKIS_PREFIX]


def recent_cells(states: Sequence[CellState]) -> list[CellState]:
    """The cells the read model keeps: those within the bucket lifetime of the newest minute counted (event
    time, as the API's windows are; a replay of old events is rebuilt too)."""
    states = [s for s in states if cells.is_cell_scope(s.cell.scope)]
    oldest = oldest_kept(states)
    if oldest is None:
        return [s for s in states if s.cell.scope == ledger.REJECTED]
    return [s for s in states if s.cell.minute >= oldest or s.cell.scope == ledger.REJECTED]


def oldest_kept(states: Sequence[CellState]) -> int | None:
    newest = max((s.cell.minute for s in states if s.cell.scope == ledger.TOTAL), default=None)
    return None if newest is None else newest - keys.BUCKET_TTL_SECONDS // 60


def page_cells(
    states: Sequence[CellState], edits: Iterable[PageEdit]
) -> list[tuple[int, str, int | None, list[PageEdit]]]:
    """The claimed edits of the kept minutes by (minute, shard) cell, in sequence order, each with the mark of
    that cell's total (None: the ledger has not counted any of them yet)."""
    marks = {(s.cell.minute, s.shard): s.sequence for s in states if s.cell.scope == ledger.TOTAL}
    oldest = oldest_kept(states)
    by_cell: dict[tuple[int, str], list[PageEdit]] = defaultdict(list)
    for edit in edits:
        if oldest is not None and edit.minute >= oldest:
            by_cell[(edit.minute, edit.shard)].append(edit)
    return [(minute, shard, marks.get((minute, shard)), sorted(cell_edits, key=lambda e: e.sequence))
            for (minute, shard), cell_edits in sorted(by_cell.items())]


class Rebuilder:
    """Refills an empty Redis from the ledger, once at a time across the fleet (a lock in Redis itself)."""

    LOCK_SECONDS = 120

    def __init__(
        self,
        client: redis.Redis,
        mirror: RedisMirror,
        scan: Callable[[], Sequence[CellState]],
        page_edits: Callable[[], Iterable[PageEdit]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`scan` reads every counter cell, `page_edits` every claimed revision; the rebuild calls them in that
        order (see `_PAGES` for why)."""
        self._client = client
        self._mirror = mirror
        self._scan = scan
        self._page_edits = page_edits
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
        """Merge every cell of the last day into Redis and count the page edits the live publishes did not, then
        mark it ready. Returns how many cells moved forward and pages were counted (0: Redis had them all); None if
        another process holds the lock."""
        # redis-py's lock: a token per holder, released and extended only by that holder, atomically.
        lock = self._client.lock(keys.REBUILD_LOCK, timeout=self.LOCK_SECONDS)
        if not lock.acquire(blocking=False):
            return None
        started = self._clock()
        try:
            states = recent_cells(self._scan())
            pages = page_cells(states, self._page_edits())
            moved = 0
            for start in range(0, len(states), MERGE_CHUNK):
                moved += self._mirror.merge(states[start : start + MERGE_CHUNK])
                lock.reacquire()
            calls = [call for cell in pages for call in rebuild_page_calls(*cell)]
            counted = 0
            for start in range(0, len(calls), PAGE_CALLS_PER_TRIP):
                counted += self._mirror.rebuild_pages(calls[start : start + PAGE_CALLS_PER_TRIP])
                lock.reacquire()
            self._mirror.advance_windows()
            pipe = self._client.pipeline(transaction=False)
            pipe.set(keys.READY, int(started))
            execute_writes(pipe)  # answers kept from the DynamoDB fallback are stale from here on
            logger.warning(
                "Redis counters rebuilt from DynamoDB: %d cells read, %d merged; %d page edits in %d cells read, "
                "%d page counts added; %.1f s",
                len(states), moved, sum(len(cell[3]) for cell in pages), len(pages), counted, self._clock() - started,
            )
            return moved + counted
        finally:
            with contextlib.suppress(redis.exceptions.LockError):  # it expired: another rebuild may be running
                lock.release()

