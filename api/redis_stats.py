"""The `StatsStore` over redis-py: reads the keys of `wikitide.keys`.

A `RedisError` becomes `DependencyUnavailable`.

The client is built by the caller (see `api.bootstrap`) with `decode_responses=True`; its bounded retries on
connection errors and timeouts are declared there, once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast
from uuid import uuid4

import redis

from api.filters import ChangeFilter
from api.recent import Collector, Position, RecentPage
from api.windows import cover
from wikitide import keys
from wikitide.errors import DependencyUnavailable

logger = logging.getLogger(__name__)

# The short windows (and a long one while its rolling set is being filled) union their minute sets: Redis sums
# them into a scratch key and sends back only the pages scoring at least the `limit`-th best (so every tie comes
# along for the ranking in `api.windows.rank_pages`), then drops the key, all in one atomic round trip. Over a
# day of minute sets this blocked Redis for seconds: the long windows read their rolling sets instead.
# KEYS[1] = scratch key, KEYS[2..] = minute sets; ARGV[1] = limit.
_TOP_PAGES_LUA = """
redis.call('ZUNIONSTORE', KEYS[1], #KEYS - 1, unpack(KEYS, 2))
local nth = redis.call('ZREVRANGE', KEYS[1], ARGV[1] - 1, ARGV[1] - 1, 'WITHSCORES')
local pages
if #nth == 0 then
  pages = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
else
  pages = redis.call('ZRANGEBYSCORE', KEYS[1], nth[2], '+inf', 'WITHSCORES')
end
redis.call('DEL', KEYS[1])
return pages
"""


# The top of a rolling window (`wikitide.keys.ROLLING_WINDOWS`), kept by the processor as it slides: the `limit`
# best pages, ties at the last place broken by title then wiki as `api.windows.rank_pages` does (the members are
# `title<TAB>wiki`, and Redis orders equal scores by member). O(log n + limit) whatever the window holds. False
# when the window is not full yet (it is being filled after Redis started empty).
# KEYS[1] = range hash, KEYS[2] = window set; ARGV[1] = limit, ARGV[2] = window length.
_WINDOW_TOP_LUA = """
local range = redis.call('HMGET', KEYS[1], 'start', 'end')
local first, last = tonumber(range[1]), tonumber(range[2])
if (not last) or last - first + 1 ~= tonumber(ARGV[2]) then return false end
local limit = tonumber(ARGV[1])
local nth = redis.call('ZREVRANGE', KEYS[2], limit - 1, limit - 1, 'WITHSCORES')
if #nth == 0 then return redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES') end
local pages = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. nth[2], '+inf', 'WITHSCORES')
local ties = redis.call('ZRANGEBYSCORE', KEYS[2], nth[2], nth[2], 'WITHSCORES', 'LIMIT', 0, limit - #pages / 2)
for i = 1, #ties do pages[#pages + 1] = ties[i] end
return pages
"""


class RedisStats:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._top_pages = client.register_script(_TOP_PAGES_LUA)
        self._window_top = client.register_script(_WINDOW_TOP_LUA)

    def latest_minute(self) -> int | None:
        with _translated("reading the latest minute"):
            raw = self._client.get(keys.LATEST_MINUTE)
        return None if raw is None else int(raw)

    def minute_counts(self, minutes: Sequence[int], wiki: str | None) -> list[Mapping[str, str | int]]:
        with _translated("reading minute counters"):
            pipe = self._client.pipeline(transaction=False)
            for minute in minutes:
                pipe.hgetall(keys.counts_key(minute, wiki))
            return list(pipe.execute())

    def page_scores(self, minutes: Sequence[int], wiki: str | None, limit: int) -> list[tuple[str, float]]:
        if not minutes:
            return []
        if len(minutes) in keys.ROLLING_WINDOWS:
            rolled = self._rolling_top(len(minutes), wiki, limit)
            if rolled is not None:
                return rolled
        scratch = f"{keys.PREFIX}:api:top:{uuid4().hex}"
        sources = [keys.pages_key(minute, wiki) for minute in minutes]
        with _translated("summing page edits"):
            flat = self._top_pages(keys=[scratch, *sources], args=[limit])
        return [(flat[i], float(flat[i + 1])) for i in range(0, len(flat), 2)]

    def _rolling_top(self, length: int, wiki: str | None, limit: int) -> list[tuple[str, float]] | None:
        """The window's top from its rolling set (as of the window's end, which follows the newest minute within a
        batch), or None while that set is not full."""
        with _translated("reading the top pages"):
            flat = self._window_top(
                keys=[keys.window_range_key(length), keys.window_pages_key(length, wiki)], args=[limit, length]
            )
        if flat is None:
            return None
        pages = [keys.page_member(*keys.split_window_member(member)) for member in flat[::2]]
        return [(page, float(score)) for page, score in zip(pages, flat[1::2], strict=True)]

    def wiki_totals(self, first: int, last: int) -> dict[str, dict[str, int]]:
        length = last - first + 1
        if length in keys.ROLLING_WINDOWS:
            with _translated("reading the wikis of a window"):
                pipe = self._client.pipeline(transaction=True)  # the range and its sums as of one moment
                pipe.hmget(keys.window_range_key(length), "start", "end")
                pipe.hgetall(keys.window_wiki_counts_key(length))
                (start, end), flat = pipe.execute()
            if start is not None and end is not None and (int(start), int(end)) == (first, last):
                return _wiki_table([flat])
        hours, minutes = cover(first, last)
        if hours:
            # The rolling hash is being filled (Redis came back empty, or a window leapt): answer from the minutes
            # rather than wait; a long window costs one read per minute until the hash is full again.
            minutes = list(range(first, last + 1))
        with _translated("reading the wikis of a window"):
            pipe = self._client.pipeline(transaction=False)
            for minute in minutes:
                pipe.hgetall(keys.minute_wikis_key(minute))
            return _wiki_table(pipe.execute())

    def page_edits(self, wiki: str, title: str, spans: Sequence[tuple[int, int]]) -> list[int]:
        member = keys.page_member(wiki, title)
        covers = [cover(first, last) for first, last in spans]
        sources = sorted({keys.hour_pages_key(hour) for hours, _ in covers for hour in hours}
                         | {keys.pages_key(minute) for _, minutes in covers for minute in minutes})
        with _translated("reading a page's edits"):
            pipe = self._client.pipeline(transaction=False)
            for source in sources:
                pipe.zscore(source, member)
            scores = dict(zip(sources, pipe.execute(), strict=True))
        return [
            round(sum(float(scores[keys.hour_pages_key(hour)] or 0) for hour in hours)
                  + sum(float(scores[keys.pages_key(minute)] or 0) for minute in minutes))
            for hours, minutes in covers
        ]

    def hour_page_edits(self, members: Sequence[str], hours: Sequence[int]) -> dict[str, int]:
        totals = dict.fromkeys(members, 0.0)
        if not members:
            return {}
        with _translated("reading pages' hourly edits"):
            pipe = self._client.pipeline(transaction=False)
            for hour in hours:
                pipe.zmscore(keys.hour_pages_key(hour), list(members))
            for scores in pipe.execute():
                for member, value in zip(members, scores, strict=True):
                    if value is not None:
                        totals[member] += float(value)
        return {member: round(total) for member, total in totals.items()}

    def recent(self, matches: ChangeFilter, after: Position | None, limit: int) -> RecentPage:
        key = keys.recent_key(matches.single_wiki)
        collector = Collector(matches, after, limit)
        chunk = limit + 1
        with _translated("reading recent edits"):
            while not collector.is_done:
                bound = collector.last or after
                top: str | int = "+inf" if bound is None else bound.ms
                # The client decodes responses, so members are str whatever redis-py's stubs allow for.
                rows = cast("list[tuple[str, float]]", self._client.zrevrangebyscore(
                    key, top, "-inf", start=0, num=chunk, withscores=True))
                fresh = [(Position(int(score), keys.split_recent_member(member)[0]), member)
                         for member, score in rows]
                fresh = [(position, member) for position, member in fresh if collector.wants(position)]
                if not fresh:
                    if len(rows) < chunk:
                        return collector.page(None)  # the list ran out
                    chunk *= 2  # a run of changes of one millisecond longer than the chunk: read further
                    continue
                for position, member in fresh:
                    if not collector.offer(position, _doc(member)):
                        break
                chunk = max(chunk, 100)
        return collector.page(None)


def _doc(member: str) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(keys.split_recent_member(member)[1])
    except json.JSONDecodeError:
        # One bad member must not blank the whole feed; the processor is the one to fix.
        logger.warning("a recent-edit member that is not JSON: %.80r", member)
        return {}
    return doc


def _wiki_table(hashes: Sequence[Mapping[str, str]]) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    for fields in hashes:
        for field, value in fields.items():
            wiki, name = keys.split_wiki_field(field)
            row = totals.setdefault(wiki, {})
            row[name] = row.get(name, 0) + int(value)
    return totals


def is_ready(client: redis.Redis) -> bool:
    """Whether Redis holds the counters (it was rebuilt since it last started empty)."""
    with _translated("checking the read model"):
        return bool(client.exists(keys.READY))


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise DependencyUnavailable(f"redis: {action} failed") from exc
