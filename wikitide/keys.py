"""The Redis key schema, shared by the KCL processor (writer) and the API (reader).

Counters live in one hash per event-time UTC minute (epoch minute), overall and per wiki; page edit
counts in one sorted set per minute. A window of W minutes is the union of the W minute buckets that
end with the minute of the newest processed event (`LATEST_MINUTE`).

The long windows (`ROLLING_WINDOWS`, 1 h and 24 h) also have page edit counts kept up to date as they slide: one
sorted set per window, overall and per wiki, holding the sum of the minute sets of the minutes `start..end` named
in the window's range hash (`window_range_key`). Their members are `window_member`s, title first, so that pages
with equal counts sort by title as the API ranks them. Beside them, one hash per window holds every wiki's
`WIKI_FIELDS` over the same minutes (`window_wiki_counts_key`), so a window of every wiki is one read.

Roll-ups the windows are built from: one hash per minute of every wiki's `WIKI_FIELDS` (`minute_wikis_key`, fields
`wiki_field`), and one sorted set of page edits per event-time UTC hour (`hour_pages_key`, the sum of its 60 minute
sets) for windows and baselines that span hours.

The recent changes are sorted sets scored by event time in milliseconds; a member is `recent_member`: the change's
de-duplication key, a tab, its document. Equal scores sort by member, so by key: the order the API pages through.
"""

from __future__ import annotations

from datetime import datetime

PREFIX = "wt"
LATEST_MINUTE = f"{PREFIX}:latest_minute"
REJECTED = f"{PREFIX}:rejected"
# Set once the counters were rebuilt from DynamoDB after Redis started empty; until then readers fall back.
READY = f"{PREFIX}:ready"
REBUILD_LOCK = f"{PREFIX}:rebuild_lock"
# Incremented after every write of the read model (a processor's batch, each step of a rebuild): an API process
# reuses a kept answer only while this has not moved (`api/answer_cache.py`).
DATA_VERSION = f"{PREFIX}:version"

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


MINUTE_PAGES_PREFIX = f"{PREFIX}:p:"


def pages_key(minute: int, wiki: str | None = None) -> str:
    return f"{MINUTE_PAGES_PREFIX}{minute}" if wiki is None else f"{MINUTE_PAGES_PREFIX}{minute}:w:{wiki}"


def recent_key(wiki: str | None = None) -> str:
    return f"{PREFIX}:recent" if wiki is None else f"{PREFIX}:recent:w:{wiki}"


def recent_member(key: str, doc_json: str) -> str:
    return f"{key}\t{doc_json}"


def split_recent_member(member: str) -> tuple[str, str]:
    """`(de-duplication key, document JSON)` of a recent member; a key holds no tab."""
    key, _, doc_json = member.partition("\t")
    return key, doc_json


# What `/v1/wikis` reports per wiki; a subset of COUNT_FIELDS, so a window of every wiki stays a small hash.
WIKI_FIELDS = ("events", "edit", "new", "bot_events", "bytes_added", "bytes_removed")
HOUR_MINUTES = 60


MINUTE_WIKIS_PREFIX = f"{PREFIX}:wm:"


def minute_wikis_key(minute: int) -> str:
    return f"{MINUTE_WIKIS_PREFIX}{minute}"


def wiki_field(wiki: str, name: str) -> str:
    return f"{wiki}|{name}"


def split_wiki_field(field: str) -> tuple[str, str]:
    """`(wiki, counter name)`; a wiki name holds no `|` (`api.params` accepts none)."""
    wiki, _, name = field.rpartition("|")
    return wiki, name


def hour_pages_key(hour: int) -> str:
    """Page edits of the epoch hour `hour` (`minute // 60`), members `page_member`s."""
    return f"{PREFIX}:ph:{hour}"


def cell_states_key(minute: int) -> str:
    """The counter cells merged into a minute's buckets: field `<scope>|<shard>`, value the cell's state."""
    return f"{PREFIX}:s:{minute}"


ROLLING_WINDOWS = (60, 1440)


def window_range_key(length: int) -> str:
    """Hash with `start` and `end`: the minutes the rolling window of `length` minutes holds."""
    return f"{PREFIX}:win:{length}:range"


def window_pages_key(length: int, wiki: str | None = None) -> str:
    base = f"{PREFIX}:win:{length}:p"
    return base if wiki is None else f"{base}:w:{wiki}"


def window_wiki_counts_key(length: int) -> str:
    """Hash of `wiki_field`s: every wiki's `WIKI_FIELDS` over the rolling window's minutes."""
    return f"{PREFIX}:win:{length}:wk"


def window_wikis_key(length: int) -> str:
    """The set of a window's per-wiki keys that hold entries, so that a window reset can drop them all."""
    return f"{window_pages_key(length)}:wikis"


def window_member(wiki: str, title: str) -> str:
    return f"{title}\t{wiki}"


def split_window_member(member: str) -> tuple[str, str]:
    """`(wiki, title)` of a window member; a title holds no tab (MediaWiki forbids control characters)."""
    title, _, wiki = member.rpartition("\t")
    return wiki, title


def page_member(wiki: str, title: str) -> str:
    return f"{wiki}\t{title}"


def split_page_member(member: str) -> tuple[str, str]:
    wiki, _, title = member.partition("\t")
    return wiki, title


# The live feed `/v1/stream` serves: every counted change's enriched document, appended by the processor in
# processing order to one capped Redis Stream (field `c`, the document's JSON). Its entry ids are the SSE ids.
# `XADD MAXLEN ~` keeps at least CHANGES_MAXLEN entries (Redis trims whole nodes, so a few more): about 55 minutes
# of the live stream at ~30 changes/s, and about 60 MB of Redis at ~600 bytes a document.
CHANGES_STREAM = f"{PREFIX}:changes"
CHANGES_FIELD = "c"
CHANGES_MAXLEN = 100_000
# A redelivered batch lists its changes again: each change enters the feed once, the first time its key is seen
# within this long (longer than any redelivery: the KCL redelivers within minutes).
CHANGES_SEEN_TTL_SECONDS = 6 * 3600


def change_seen_key(dedup_key: str) -> str:
    return f"{PREFIX}:changes:seen:{dedup_key}"
