"""Window and counter arithmetic: the pure core of the API (no flask, no redis).

A window of W minutes is the W epoch-minute buckets ending with, and including, the newest processed
minute (`wikitide.keys.LATEST_MINUTE`), so every window reports the same moment whatever the wall clock says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from api.errors import InvalidParameter
from wikitide.keys import COUNT_FIELDS, split_page_member

WINDOWS: dict[str, int] = {"1m": 1, "5m": 5, "1h": 60, "24h": 1440}
TYPE_FIELDS = ("edit", "new", "log", "categorize", "other")


@dataclass(frozen=True, slots=True)
class PageEdits:
    wiki: str
    title: str
    edits: int


def parse_window(raw: str | None) -> int:
    """The window's length in minutes; raises `InvalidParameter` for anything but the named windows."""
    if raw is None or raw == "":
        raise InvalidParameter(f"window is required, one of {', '.join(WINDOWS)}")
    try:
        return WINDOWS[raw]
    except KeyError:
        raise InvalidParameter(f"unknown window {raw!r}, expected one of {', '.join(WINDOWS)}") from None


def window_minutes(latest_minute: int, length: int) -> list[int]:
    """The window's epoch minutes, oldest first, the last one being `latest_minute`."""
    return list(range(latest_minute - length + 1, latest_minute + 1))


def sum_counts(hashes: Iterable[Mapping[str, str | int]]) -> dict[str, int]:
    """Field-wise sum of per-minute counter hashes over `COUNT_FIELDS`; an absent field counts as 0."""
    totals = dict.fromkeys(COUNT_FIELDS, 0)
    for counts in hashes:
        for field in COUNT_FIELDS:
            value = counts.get(field)
            if value is not None:
                totals[field] += int(value)
    return totals


def stats_body(
    window: str, wiki: str | None, totals: Mapping[str, int], latest_minute: int | None
) -> dict[str, object]:
    """The `/v1/stats` answer for summed counters."""
    return {
        "window": window,
        "wiki": wiki,
        "events": totals["events"],
        "by_type": {field: totals[field] for field in TYPE_FIELDS},
        "bot_events": totals["bot_events"],
        "human_events": totals["human_events"],
        "bytes_added": totals["bytes_added"],
        "bytes_removed": totals["bytes_removed"],
        "synthetic_events": totals["synthetic_events"],
        "as_of": None if latest_minute is None else minute_iso(latest_minute),
    }


def minute_iso(minute: int) -> str:
    """The start of an epoch minute as `YYYY-MM-DDTHH:MM:00Z`."""
    return datetime.fromtimestamp(minute * 60, tz=UTC).strftime("%Y-%m-%dT%H:%M:00Z")


def rank_pages(scores: Iterable[tuple[str, float]], limit: int) -> list[PageEdits]:
    """The `limit` most edited pages: edits descending, then title, then wiki ascending.

    `scores` holds page members (`wiki<TAB>title`) with edit counts already summed over the window; a member
    listed twice is summed again, so callers may pass per-minute scores unsummed.
    """
    edits: dict[str, float] = {}
    for member, score in scores:
        edits[member] = edits.get(member, 0.0) + score
    pages = [PageEdits(*split_page_member(member), edits=round(total)) for member, total in edits.items()]
    pages.sort(key=lambda page: (-page.edits, page.title, page.wiki))
    return pages[:limit]


def window_span(latest_minute: int, length: int) -> tuple[int, int]:
    """The window's first and last epoch minutes."""
    return latest_minute - length + 1, latest_minute


def cover(first: int, last: int) -> tuple[list[int], list[int]]:
    """The minutes `first..last` as `(whole epoch hours, the minutes left over)`: at most 118 minutes are left
    over, so a day is read as 24 hourly roll-ups and two partial hours instead of 1,440 minutes."""
    if last < first:
        return [], []
    first_hour = -(-first // 60)  # the first hour that starts at or after `first`
    end_hour = (last + 1) // 60  # the hours before this one end at or before `last`
    if first_hour >= end_hour:
        return [], list(range(first, last + 1))
    hours = list(range(first_hour, end_hour))
    minutes = list(range(first, first_hour * 60)) + list(range(end_hour * 60, last + 1))
    return hours, minutes


def wiki_rows(totals: Mapping[str, Mapping[str, int]]) -> list[dict[str, object]]:
    """The `/v1/wikis` rows: every wiki with events, sorted by events (then name), with its bot share."""
    ranked: list[tuple[int, str, dict[str, object]]] = []
    for wiki, counts in totals.items():
        events = int(counts.get("events", 0))
        if events <= 0:
            continue
        bots = int(counts.get("bot_events", 0))
        ranked.append((-events, wiki, {
            "wiki": wiki,
            "events": events,
            "edits": int(counts.get("edit", 0)) + int(counts.get("new", 0)),
            "bot_events": bots,
            "bot_share": round(bots / events, 4),
            "bytes_added": int(counts.get("bytes_added", 0)),
            "bytes_removed": int(counts.get("bytes_removed", 0)),
        }))
    ranked.sort(key=lambda item: item[:2])
    return [row for _, _, row in ranked]
