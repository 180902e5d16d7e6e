"""Trending pages: edits in a window far above the page's own rate over the hours before it. Pure.

The score is a Poisson z-score with one edit of smoothing: with `w` the page's edits in the window and
`e = b * W / B` the edits its baseline (`b` edits in the `BASELINE_HOURS` whole UTC hours before the hour the
window starts in, `B` their minutes) predicts for the window's `W` minutes,

    score = (w - e) / sqrt(e + 1)

Why this one: a page edited steadily all day has `w` close to `e` and scores about 0, however busy it is (a bot
working through a list, a talk page); a page that goes from 0 to 12 edits in 5 minutes scores 12; and the
square root keeps a very busy page's ordinary noise (a few edits above its own high rate) from outranking a quiet
page's burst. The `+ 1` keeps a page with no baseline finite. The candidates are the `CANDIDATES` most edited pages
of the window (ranked as `/v1/pages/top` ranks them) with at least `MIN_EDITS` edits there; the answer ranks them
by score, then edits in the window, then title and wiki, and keeps those scoring above 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from api.windows import PageEdits

BASELINE_HOURS = 6
MIN_EDITS = 3
CANDIDATES = 500
# Windows a baseline of whole hours before them makes sense for; a day has no day of history here to compare with.
TRENDING_WINDOWS = ("1m", "5m", "1h")


@dataclass(frozen=True, slots=True)
class TrendingPage:
    wiki: str
    title: str
    edits: int
    baseline_edits: int
    expected: float
    score: float


def baseline_hours(first_minute: int) -> list[int]:
    """The epoch hours of the baseline: the `BASELINE_HOURS` whole hours before the hour of `first_minute`."""
    hour = first_minute // 60
    return list(range(hour - BASELINE_HOURS, hour))


def score(edits: int, baseline: int, window_minutes: int) -> tuple[float, float]:
    """`(expected edits, score)` of a page with `edits` in the window and `baseline` edits in its baseline hours."""
    expected = baseline * window_minutes / (BASELINE_HOURS * 60)
    return expected, (edits - expected) / math.sqrt(expected + 1)


def candidates(top: Sequence[PageEdits]) -> list[PageEdits]:
    """The ranked top pages of the window (at most `CANDIDATES`) that can trend."""
    return [page for page in top[:CANDIDATES] if page.edits >= MIN_EDITS]


def rank(pages: Sequence[PageEdits], baselines: Mapping[tuple[str, str], int], window_minutes: int,
         limit: int) -> list[TrendingPage]:
    """The `limit` trending pages among `pages`; `baselines` maps (wiki, title) to the baseline hours' edits."""
    scored = []
    for page in pages:
        baseline = baselines.get((page.wiki, page.title), 0)
        expected, value = score(page.edits, baseline, window_minutes)
        if value > 0:
            scored.append(TrendingPage(page.wiki, page.title, page.edits, baseline, expected, value))
    scored.sort(key=lambda p: (-p.score, -p.edits, p.title, p.wiki))
    return scored[:limit]
