"""`--since` on a cold start, and telling the user when EventStreams could not go back that far. Pure."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import msgspec

from wikitide.errors import ConfigError

_RELATIVE = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
# EventStreams resumes timestamps at 1-s granularity and events arrive up to minutes out of order.
GAP_TOLERANCE = timedelta(minutes=2)


def parse_since(value: str, now: datetime) -> datetime:
    """`2026-11-27T10:00:00Z` or a duration before `now` such as `90s`, `15m`, `1h`, `2d`."""
    match = _RELATIVE.match(value.strip())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"--since {value!r}: use an ISO time (2026-11-27T10:00:00Z) or a duration (15m, 2d)") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cold_start_gap(since: datetime, first_event_data: bytes | str) -> timedelta | None:
    """How much of the requested history is missing: EventStreams silently starts from "now" when
    `since` is older than its retention. None when the stream did go back far enough (or cannot tell, as
    for a first frame that is not a readable event)."""
    try:
        dt = msgspec.json.decode(first_event_data)["meta"]["dt"]
        first = datetime.fromisoformat(dt.replace("Z", "+00:00"))
    except (msgspec.DecodeError, RecursionError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if first.tzinfo is None:
        first = first.replace(tzinfo=UTC)
    gap = first - since
    return gap if gap > GAP_TOLERANCE else None
