"""The read use cases behind the JSON routes: read through a `StatsStore`, compute with `api.windows`.

Pure: no flask, no redis. Each function returns the JSON-ready body of its endpoint.
"""

from __future__ import annotations

from typing import Any

from api.ports import StatsStore
from api.windows import minute_iso, parse_window, rank_pages, stats_body, sum_counts, window_minutes


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


def recent_edits(store: StatsStore, wiki: str | None, limit: int) -> dict[str, Any]:
    return {"edits": store.recent_edits(wiki, limit)}


# Said while nothing is counted yet, rather than a silent zero: on a cold start the KCL 3 worker creates its lease
# table, waits 1-30 s at random before the first shard sync (not configurable), then takes the leases and works
# through the backlog the producer wrote meanwhile.
STARTING_REASON = ("no event counted yet: the KCL workers are starting (lease table, shard sync, lease assignment), "
                   "then they process what the producer has written meanwhile; about a minute after a cold start")


def pipeline_state(store: StatsStore) -> dict[str, Any]:
    """`starting` (with the reason) until the processors have counted an event, then `counting`."""
    latest = store.latest_minute()
    if latest is None:
        return {"state": "starting", "reason": STARTING_REASON}
    return {"state": "counting", "latest_minute": minute_iso(latest)}
