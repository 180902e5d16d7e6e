"""The backfill's window: which events it passes on, where it ends, and what it says about the stream's history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from producer.backfill import BackfillWindow
from producer.sse_source import SourceEvent

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def _event(at: datetime, name: str = "x") -> SourceEvent:
    data = json.dumps({"meta": {"dt": at.strftime("%Y-%m-%dT%H:%M:%SZ")}, "title": name}).encode()
    return SourceEvent(data, id=name)


class _Source:
    """An endless source that records whether it was closed (the SSE connection must be let go)."""

    def __init__(self, events: list[SourceEvent]) -> None:
        self.events = events
        self.is_closed = False

    def __iter__(self) -> Iterator[SourceEvent]:
        return self

    def __next__(self) -> SourceEvent:
        if not self.events:
            raise AssertionError("read past the window's end")
        return self.events.pop(0)

    def close(self) -> None:
        self.is_closed = True


def test_passes_the_window_and_ends_at_the_first_event_past_it_with_the_source_closed() -> None:
    window = BackfillWindow(T0, T0 + timedelta(minutes=10))
    inside = [_event(T0 + timedelta(minutes=m), f"e{m}") for m in (0, 5, 11)]  # 11: late but within tolerance
    source = _Source([*inside, _event(T0 + timedelta(minutes=4), "out-of-order"),
                      SourceEvent(b"", id="rejected", rejected="oversized"), _event(T0 + timedelta(minutes=13), "past"),
                      _event(T0, "never read")])
    passed = [event.id for event in window.bound(source)]
    assert passed == ["e0", "e5", "e11", "out-of-order", "rejected"]
    assert source.is_closed and window.ended_at == T0 + timedelta(minutes=13)
    assert window.lost is None and not window.is_beyond_retention
    assert window.describe() == [
        "backfilled 5 events with event times 2026-12-02T10:00:00+00:00 .. 2026-12-02T10:11:00+00:00, "
        "up to the first event past 2026-12-02T10:10:00+00:00"]


def test_a_stream_that_starts_after_the_window_held_none_of_it() -> None:
    window = BackfillWindow(T0, T0 + timedelta(minutes=10))
    source = _Source([_event(T0 + timedelta(days=8), "newest")])
    assert list(window.bound(source)) == []
    assert window.is_beyond_retention and source.is_closed
    (line,) = window.describe()
    assert line.startswith("the gap 2026-12-02T10:00:00+00:00 .. 2026-12-02T10:10:00+00:00 is older than what "
                           "EventStreams still holds")
    assert "Nothing was backfilled" in line


def test_a_stream_that_starts_inside_the_window_names_the_part_it_no_longer_holds() -> None:
    window = BackfillWindow(T0, T0 + timedelta(minutes=10))
    source = _Source([_event(T0 + timedelta(minutes=6), "a"), _event(T0 + timedelta(minutes=30), "b")])
    assert [e.id for e in window.bound(source)] == ["a"]
    assert window.lost == timedelta(minutes=6)
    filled, missing = window.describe()
    assert filled.startswith("backfilled 1 events")
    assert missing.startswith("0:06:00 of the gap, 2026-12-02T10:00:00+00:00 .. 2026-12-02T10:06:00+00:00, is older")


def test_a_start_within_the_tolerance_is_not_a_loss() -> None:
    window = BackfillWindow(T0, T0 + timedelta(minutes=10))
    list(window.bound(_Source([_event(T0 + timedelta(seconds=90)), _event(T0 + timedelta(hours=1))])))
    assert window.lost is None
