"""The Redis key schema, shared by the KCL processor (writer) and the API (reader).

Counters live in one hash per event-time UTC minute (epoch minute), overall and per wiki; page edit
counts in one sorted set per minute. A window of W minutes is the union of the W minute buckets that
end with the minute of the newest processed event (`LATEST_MINUTE`).
"""

from __future__ import annotations

from datetime import datetime

PREFIX = "wt"
LATEST_MINUTE = f"{PREFIX}:latest_minute"
REJECTED = f"{PREFIX}:rejected"
# Set once the counters were rebuilt from DynamoDB after Redis started empty; until then readers fall back.
READY = f"{PREFIX}:ready"
REBUILD_LOCK = f"{PREFIX}:rebuild_lock"

COUNT_FIELDS = (
    "events",
    "edit",
    "new",
    "log",
    "categorize",
    "other",
    "bot_events",
    "human_events",
    "bytes_added",
    "bytes_removed",
    "synthetic_events",
)

# Minute buckets outlive the longest window (24 h) with room for late events and slow replays.
BUCKET_TTL_SECONDS = 26 * 3600
RECENT_LIMIT = 500


def epoch_minute(dt: datetime) -> int:
    return int(dt.timestamp()) // 60


def counts_key(minute: int, wiki: str | None = None) -> str:
    return f"{PREFIX}:m:{minute}" if wiki is None else f"{PREFIX}:m:{minute}:w:{wiki}"


def pages_key(minute: int, wiki: str | None = None) -> str:
    return f"{PREFIX}:p:{minute}" if wiki is None else f"{PREFIX}:p:{minute}:w:{wiki}"


def recent_key(wiki: str | None = None) -> str:
    return f"{PREFIX}:recent" if wiki is None else f"{PREFIX}:recent:w:{wiki}"


def cell_states_key(minute: int) -> str:
    """The counter cells merged into a minute's buckets: field `<scope>|<shard>`, value the cell's state."""
    return f"{PREFIX}:s:{minute}"


def page_member(wiki: str, title: str) -> str:
    return f"{wiki}\t{title}"


def split_page_member(member: str) -> tuple[str, str]:
    wiki, _, title = member.partition("\t")
    return wiki, title
