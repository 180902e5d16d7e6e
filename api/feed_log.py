"""Redis adapter of the live feed (`wikitide.keys.CHANGES_STREAM`): reads entries after an id, blocking or not.

Its client has a socket timeout longer than the longest block it asks for, and one attempt per call: the fan-out's
reader (`api.fanout`) is the only loop around it, with its own pause between failures.
"""

from __future__ import annotations

from typing import Any

import redis

from api.ports import FeedBounds, FeedEntry
from wikitide import keys
from wikitide.errors import DependencyUnavailable

_FAILURES = (redis.RedisError, OSError)


class RedisFeedLog:
    def __init__(self, client: redis.Redis, stream: str = keys.CHANGES_STREAM) -> None:
        self._client = client
        self._stream = stream

    def read(self, after: str, count: int, block_ms: int | None = None) -> list[FeedEntry]:
        try:
            found: Any = self._client.xread({self._stream: after}, count=count, block=block_ms)
        except _FAILURES as exc:
            raise DependencyUnavailable("the live feed could not be read (Redis)") from exc
        if not found:
            return []
        # RESP2 answers a list of [stream, entries]; RESP3 a dict of stream -> entries.
        entries = found[0][1] if isinstance(found, list) else next(iter(found.values()))[0]
        return [FeedEntry.of(_text(entry_id), _text(fields.get(keys.CHANGES_FIELD, "null")))
                for entry_id, fields in entries]

    def bounds(self) -> FeedBounds:
        try:
            info: Any = self._client.xinfo_stream(self._stream)
        except redis.ResponseError:  # no such key: nothing was appended yet (or Redis restarted empty)
            return FeedBounds(None, None, False)
        except _FAILURES as exc:
            raise DependencyUnavailable("the live feed could not be read (Redis)") from exc
        first = info.get("first-entry")
        oldest = _text(first[0]) if first else None
        newest = _text(info["last-generated-id"]) if info.get("length") else None
        # XINFO's max-deleted-entry-id does not move when XADD MAXLEN trims; entries-added against length does.
        return FeedBounds(oldest, newest, int(info.get("entries-added", 0)) > int(info.get("length", 0)))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
