"""Validation of the query and path parameters that are not windows; each failure is an `InvalidParameter`."""

from __future__ import annotations

import re

from api.errors import InvalidParameter
from wikitide.limits import MAX_SAFE_INTEGER

# Database names such as `enwiki`, `zh_min_nanwiki`, `be_x_oldwiki`; anything else cannot name a key the
# processor wrote, and rejecting it keeps odd characters out of the Redis key names.
WIKI_PATTERN = r"[A-Za-z0-9_.-]{1,64}"
_WIKI = re.compile(WIKI_PATTERN)
# ASCII digits only (`str.isdigit` accepts "²"), and few enough that `int()` never meets its digit limit.
_POSITIVE_INT = re.compile(r"[1-9][0-9]{0,17}")
# A live-feed id as Redis Streams numbers entries: milliseconds, a dash, a sequence number.
# What MediaWiki forbids in a title (`#<>[]|{}`, control characters) and U+FEFF, which JSON Schema's `\s` counts as a
# space and Python's does not: the document states these patterns, so both readings must agree.
_NOT_IN_TITLE = r"#<>\[\]|{}\x00-\x1f\x7f-\x9f\ufeff"
TITLE_PATTERN = rf"[^\s{_NOT_IN_TITLE}][^{_NOT_IN_TITLE}]*"
# In a URL path `_` is a space, so a title cannot start with one there either.
PATH_TITLE_PATTERN = rf"[^\s_{_NOT_IN_TITLE}][^{_NOT_IN_TITLE}]*"
MAX_TITLE_CHARS = 1024
_TITLE = re.compile(TITLE_PATTERN)
# A dead letter's id: its shard and sequence number, and `.<n>` for an event of an aggregated record past its first
# (`kcl_app.handler.StreamRecord.position`).
LETTER_ID_PATTERN = r"[A-Za-z0-9_.-]{1,128}#[0-9]{1,128}(\.[0-9]{1,7})?"
LETTER_ID_MAX_CHARS = 128 + 1 + 128 + 8
_LETTER_ID = re.compile(LETTER_ID_PATTERN)
FEED_ID_PATTERN = r"[0-9]{1,15}-[0-9]{1,15}"
_FEED_ID = re.compile(FEED_ID_PATTERN)


def parse_limit(raw: str | None, *, default: int, maximum: int) -> int:
    """`raw` as an int in 1..maximum, `default` when absent."""
    if raw is None:
        return default
    if not _POSITIVE_INT.fullmatch(raw) or int(raw) > maximum:
        raise InvalidParameter(f"limit must be an integer from 1 to {maximum}, got {raw!r}")
    return int(raw)


def parse_wiki_filter(raw: str | None) -> str | None:
    """The optional `wiki` query parameter, `None` when absent."""
    return None if raw is None else parse_wiki(raw)


def parse_wiki(raw: str) -> str:
    if not _WIKI.fullmatch(raw):
        raise InvalidParameter(f"wiki must be a wiki database name such as 'enwiki', got {raw!r}")
    return raw


def parse_rev_id(raw: str) -> int:
    """A revision id: a positive integer no larger than any stored event can hold."""
    if not _POSITIVE_INT.fullmatch(raw) or int(raw) > MAX_SAFE_INTEGER:
        raise InvalidParameter(f"rev_id must be an integer from 1 to {MAX_SAFE_INTEGER}, got {raw!r}")
    return int(raw)


def parse_title(raw: str | None) -> str:
    """A page title as MediaWiki writes it in events (spaces, not underscores, never a leading space): 1 to 1,024
    characters here (MediaWiki: at most 255 bytes), none of those MediaWiki forbids in a title."""
    if raw is None or not _TITLE.fullmatch(raw) or len(raw) > MAX_TITLE_CHARS:
        raise InvalidParameter(f"title must be a page title such as 'Main Page', got {raw[:80]!r}"
                               if raw is not None else "title is required: a page title such as 'Main Page'")
    return raw


def parse_path_title(raw: str) -> str:
    """A title from a URL path, where MediaWiki writes spaces as underscores (`Main_Page`); both are accepted."""
    return parse_title(raw.replace("_", " "))


def parse_last_event_id(raw: str | None) -> str | None:
    """The id a `/v1/stream` client resumes after (its `Last-Event-ID`), `None` when absent."""
    if raw is None:
        return None
    if not _FEED_ID.fullmatch(raw):
        raise InvalidParameter(f"last_event_id must be a stream id such as 1733130000000-0, got {raw[:80]!r}")
    return raw


def parse_letter_id(raw: str) -> str:
    if not _LETTER_ID.fullmatch(raw):
        raise InvalidParameter(f"id must be a dead letter's id such as shardId-000000000000#4960..., got {raw[:80]!r}")
    return raw


def decode_cursor(raw: str | None) -> str | None:
    """The dead letters' `cursor`: the `next` of a previous page (`api.control_plane.encode_cursor`)."""
    if raw is None:
        return None
    if not _LETTER_ID.fullmatch(raw):
        raise InvalidParameter(f"cursor must be the `next` of a previous page, got {raw[:80]!r}")
    return raw
