"""The live feed's writer: each counted change's enriched document appended to the capped Redis Stream that
`/v1/stream` serves (`wikitide.keys.CHANGES_STREAM`).

Appended in the same pipeline as the counters (`kcl_app.redis_mirror.RedisMirror.publish`), after the batch's
changes were claimed and counted, so a change is in the feed only once it is in the read model. A redelivered
batch lists its changes again: a script appends a change only when it sets the change's seen-key (`SET NX`,
expiring after `CHANGES_SEEN_TTL_SECONDS`), so each change enters the feed once. The feed is best kept, not
durable: a Redis that restarts empty starts an empty feed (the events table keeps every change).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kcl_app.handler import ProcessedChange, recent_json
from wikitide import keys

# KEYS[1] = the stream, KEYS[2..] = one seen-key per change; ARGV[1] = MAXLEN, ARGV[2] = seen TTL, ARGV[3..] = the
# documents, in the order of KEYS[2..]. Returns how many were appended.
APPEND = """
local added = 0
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[2]) then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', ARGV[3], ARGV[i + 2])
    added = added + 1
  end
end
return added
"""
# Changes per script call: one call holds Redis for about a millisecond per few hundred appends.
CHUNK = 250


def append_calls(
    changes: Sequence[ProcessedChange], maxlen: int = keys.CHANGES_MAXLEN
) -> list[tuple[list[str], list[Any]]]:
    """The (keys, args) of the script calls that append `changes`, in order."""
    calls = []
    for start in range(0, len(changes), CHUNK):
        chunk = changes[start : start + CHUNK]
        call_keys = [keys.CHANGES_STREAM, *(keys.change_seen_key(item.key) for item in chunk)]
        args: list[Any] = [maxlen, keys.CHANGES_SEEN_TTL_SECONDS, keys.CHANGES_FIELD]
        args.extend(recent_json(item) for item in chunk)
        calls.append((call_keys, args))
    return calls
