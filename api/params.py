"""Validation of the query and path parameters that are not windows; each failure is an `InvalidParameter`."""

from __future__ import annotations

import re

from api.errors import InvalidParameter
from wikitide.limits import MAX_SAFE_INTEGER

# Database names such as `enwiki`, `zh_min_nanwiki`, `be_x_oldwiki`; anything else cannot name a key the
# processor wrote, and rejecting it keeps odd characters out of the Redis key names.
_WIKI = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# ASCII digits only (`str.isdigit` accepts "²"), and few enough that `int()` never meets its digit limit.
_POSITIVE_INT = re.compile(r"[1-9][0-9]{0,17}")
# A live-feed id as Redis Streams numbers entries: milliseconds, a dash, a sequence number.
_FEED_ID = re.compile(r"[0-9]{1,15}-[0-9]{1,15}")


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
    """A page title as MediaWiki writes it in events (spaces, not underscores, never a leading space); at most
    255 bytes there, 1,024 characters here."""
    if raw is None or not raw[:1].strip() or len(raw) > 1024:
        raise InvalidParameter(f"title must be a page title such as 'Main Page', got {raw!r}")
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
