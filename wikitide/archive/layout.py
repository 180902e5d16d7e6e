"""Where the archive's objects are, written once. Pure.

Firehose's own layout, on AWS and locally alike: `raw/YYYY/MM/DD/HH/<delivery stream>-<version>-YYYY-MM-DD-HH-MM-SS-
<random>`, gzip NDJSON, one `wikitide.envelope` record per line. The hour is the UTC hour in which Firehose
received the records (the oldest of the object), **not the event time**: for the live stream it is within seconds
of the producer's receive time, for a replayed recording it can be years after `meta.dt`. A record lands in the
hour it was received or, after buffering, a later one (at most `MAX_BUFFER_SECONDS`), so a range of receive times
[start, end) is read from the objects of the hours from start's to end's plus the buffer, filtered by each line's
`received_ms`. Objects Firehose could not deliver go under `errors/` (its error-output prefix).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

PREFIX = "raw/"
ERROR_PREFIX = "errors/"
# Firehose's largest buffering interval: a record is in an object of its receive hour or at most this much later.
MAX_BUFFER_SECONDS = 900

_KEY = re.compile(r"^raw/(\d{4})/(\d{2})/(\d{2})/(\d{2})/.*-(\d{4})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-[^/]*$")


def hour_prefix(at: datetime) -> str:
    return f"{PREFIX}{at.astimezone(UTC):%Y/%m/%d/%H}/"


def hour_prefixes(start: datetime, end: datetime) -> Iterator[str]:
    """The prefixes that can hold a record received in [start, end), oldest first."""
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    last = end.astimezone(UTC) + timedelta(seconds=MAX_BUFFER_SECONDS)
    while hour <= last:
        yield hour_prefix(hour)
        hour += timedelta(hours=1)


def written_at(key: str) -> datetime | None:
    """When Firehose wrote the object (from its name), or None for a key outside the layout."""
    match = _KEY.match(key)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[4:])
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def is_within(received_ms: int, start: datetime, end: datetime) -> bool:
    return start.timestamp() * 1000 <= received_ms < end.timestamp() * 1000
