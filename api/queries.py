"""The read use cases behind the JSON routes: read through a `StatsStore`, compute with `api.windows`.

Pure: no flask, no redis. Each function returns the JSON-ready body of its endpoint.
"""

from __future__ import annotations

from typing import Any

from api import trending
from api.errors import InvalidParameter
from api.filters import ChangeFilter
from api.ports import EditStore, StatsStore
from api.recent import Position, cursor_of
from api.windows import (
    WINDOWS,
    minute_iso,
    parse_window,
    rank_pages,
    stats_body,
    sum_counts,
    wiki_rows,
    window_minutes,
    window_span,
)
from wikitide.keys import page_member


def window_stats(store: StatsStore, window: str, wiki: str | None) -> dict[str, Any]:
    length = parse_window(window)
    latest = store.latest_minute()
    hashes = [] if latest is None else store.minute_counts(window_minutes(latest, length), wiki)
    return stats_body(window, wiki, sum_counts(hashes), latest)


def top_pages(store: StatsStore, window: str, wiki: str | None, limit: int) -> dict[str, Any]:
    length = parse_window(window)
    latest = store.latest_minute()
    scores = [] if latest is None else store.page_scores(window_minutes(latest, length), wiki, limit)
    pages = [{"wiki": p.wiki, "title": p.title, "edits": p.edits} for p in rank_pages(scores, limit)]
    return {"window": window, "wiki": wiki, "pages": pages}


def recent_edits(store: StatsStore, matches: ChangeFilter, after: Position | None, limit: int) -> dict[str, Any]:
    page = store.recent(matches, after, limit)
    return {"edits": page.edits, "next": None if page.next is None else cursor_of(page.next)}


def wikis(store: StatsStore, window: str) -> dict[str, Any]:
    length = parse_window(window)
    latest = store.latest_minute()
    rows = [] if latest is None else wiki_rows(store.wiki_totals(*window_span(latest, length)))
    return {"window": window, "as_of": None if latest is None else minute_iso(latest), "wikis": rows}


def page_detail(store: StatsStore, edits: EditStore, wiki: str, title: str, limit: int) -> dict[str, Any] | None:
    """The page's latest change, its edits per window and its last `limit` changes; None for a page never seen."""
    latest_change = edits.latest_change(wiki, title)
    changes = edits.page_changes(wiki, title, limit)
    latest = store.latest_minute()
    counts = dict.fromkeys(WINDOWS, 0)
    if latest is not None:
        spans = [window_span(latest, length) for length in WINDOWS.values()]
        counts = dict(zip(WINDOWS, store.page_edits(wiki, title, spans), strict=True))
    if latest_change is None and not changes and not any(counts.values()):
        return None
    return {"wiki": wiki, "title": title, "as_of": None if latest is None else minute_iso(latest),
            "edits": counts, "latest_change": latest_change, "changes": changes}


def trending_pages(store: StatsStore, window: str, wiki: str | None, limit: int) -> dict[str, Any]:
    if window not in trending.TRENDING_WINDOWS:
        parse_window(window)  # names the windows when it is none at all
        raise InvalidParameter(f"window {window!r} has no baseline of hours before it here; trending takes "
                               f"{', '.join(trending.TRENDING_WINDOWS)}")
    length = WINDOWS[window]
    latest = store.latest_minute()
    pages: list[dict[str, Any]] = []
    if latest is not None:
        minutes = window_minutes(latest, length)
        hours = trending.baseline_hours(minutes[0])
        # A store without baselines (DynamoDB, while Redis is rebuilt) refuses this at once: ask before reading the
        # window's pages, which from DynamoDB is a Query per minute of the window, for an answer that would be a 503.
        store.hour_page_edits([], hours)
        top = rank_pages(store.page_scores(minutes, wiki, trending.CANDIDATES), trending.CANDIDATES)
        found = trending.candidates(top)
        members = [page_member(p.wiki, p.title) for p in found]
        baseline = store.hour_page_edits(members, hours) if members else {}
        baselines = {(p.wiki, p.title): baseline.get(m, 0) for p, m in zip(found, members, strict=True)}
        pages = [{"wiki": p.wiki, "title": p.title, "edits": p.edits, "baseline_edits": p.baseline_edits,
                  "expected_edits": round(p.expected, 3), "score": round(p.score, 3)}
                 for p in trending.rank(found, baselines, length, limit)]
    return {"window": window, "wiki": wiki, "baseline_hours": trending.BASELINE_HOURS,
            "as_of": None if latest is None else minute_iso(latest), "pages": pages}


# Said while nothing is counted yet, rather than a silent zero: on a cold start the KCL 3 worker creates its lease
# table, waits 1-30 s at random before the first shard sync (not configurable; the local stack writes the first
# leases itself, `wikitide.localstack.first_leases`), then takes the leases and works through the backlog the
# producer wrote meanwhile.
STARTING_REASON = ("no event counted yet: the KCL workers are starting (lease table, shard sync, lease assignment), "
                   "then they process what the producer has written meanwhile; up to about a minute after a cold "
                   "start")


def pipeline_state(store: StatsStore) -> dict[str, Any]:
    """`starting` (with the reason) until the processors have counted an event, then `counting`."""
    latest = store.latest_minute()
    if latest is None:
        return {"state": "starting", "reason": STARTING_REASON}
    return {"state": "counting", "latest_minute": minute_iso(latest)}
