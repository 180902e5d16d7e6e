"""`wikitide backfill`: a gap the producer reported, read again from EventStreams with `since=`. Pure.

The producer reports a gap (`GAP: ... between events at A and B`) when offsets went missing. EventStreams keeps a
limited history (its retention): asked with `since=T` inside it, it replays from T; asked further back, it
silently starts from the newest event (`../shared/data/recentchange/README.md`). So a backfill reads from `since`,
writes what it reads through the producer's own path (its parsing, envelope, per-page order and writer), and ends
at the first event past `until` (plus the tolerance for events that arrive out of `meta.dt` order). Events it
writes that the stream already holds are absorbed by the processor's de-duplication.

What the stream sent first tells whether the gap could be filled: an event later than `until` means none of the
gap is held any more; an event later than `since` (beyond the tolerance) means its beginning is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec

from producer.since import GAP_TOLERANCE
from producer.sse_source import SourceEvent


def event_dt(data: bytes) -> datetime | None:
    """The event's `meta.dt` as an aware time, or None when the payload carries no readable one."""
    try:
        dt = msgspec.json.decode(data)["meta"]["dt"]
        moment = datetime.fromisoformat(dt.replace("Z", "+00:00"))
    except (msgspec.DecodeError, RecursionError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class BackfillWindow:
    """Which events of the stream belong to the backfill of [since, until], and what the stream held of it."""

    since: datetime
    until: datetime
    tolerance: timedelta = GAP_TOLERANCE
    first_dt: datetime | None = None  # event time of the first readable event the stream sent
    oldest_dt: datetime | None = None  # the oldest and newest event times passed on
    newest_dt: datetime | None = None
    passed: int = 0  # events passed on to the producer
    ended_at: datetime | None = None  # the event past the window that ended it

    def bound(self, events: Iterator[SourceEvent]) -> Iterator[SourceEvent]:
        """`events` up to (not including) the first event past `until + tolerance`; the source is closed then."""
        try:
            for event in events:
                moment = event_dt(event.data) if event.data else None
                if moment is not None:
                    if self.first_dt is None:
                        self.first_dt = moment
                    if moment > self.until + self.tolerance:
                        self.ended_at = moment
                        return
                    self.oldest_dt = moment if self.oldest_dt is None else min(self.oldest_dt, moment)
                    self.newest_dt = moment if self.newest_dt is None else max(self.newest_dt, moment)
                self.passed += 1
                yield event
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()

    @property
    def is_beyond_retention(self) -> bool:
        """Nothing of the window is held any more: the stream's first event is already past its end."""
        return self.first_dt is not None and self.first_dt > self.until + self.tolerance

    @property
    def lost(self) -> timedelta | None:
        """How much of the window's beginning the stream no longer holds (None when it held all of it)."""
        if self.first_dt is None or self.first_dt - self.since <= self.tolerance:
            return None
        return min(self.first_dt, self.until) - self.since

    def describe(self) -> list[str]:
        """What was filled and what could not be, in plain sentences (the last ones name what is missing)."""
        since, until = self.since.isoformat(), self.until.isoformat()
        if self.first_dt is None:
            return [f"the stream sent no event with a time after since={since}: nothing backfilled"]
        if self.is_beyond_retention:
            return [f"the gap {since} .. {until} is older than what EventStreams still holds: asked for events "
                    f"since {since}, it started at {self.first_dt.isoformat()} (a since= older than its retention "
                    f"starts from the newest event). Nothing was backfilled; the archive "
                    f"(`wikitide archive replay`) may still hold these events"]
        lines = [f"backfilled {self.passed} events with event times {_iso(self.oldest_dt)} .. {_iso(self.newest_dt)}"
                 + (f", up to the first event past {until}" if self.ended_at else "")]
        lost = self.lost
        if lost is not None:
            lines.append(f"{lost} of the gap, {since} .. {_iso(min(self.first_dt, self.until))}, is older than what "
                         f"EventStreams still holds and was not backfilled; the archive (`wikitide archive replay`)"
                         f" may still hold it")
        return lines


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "?"
