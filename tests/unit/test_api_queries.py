"""The query endpoints of issue 9 over hand-written fakes: a page's view, the wikis of a window, trending pages
and the filtered, paged recent changes."""

from __future__ import annotations

import math

from api.filters import parse_change_filter
from api.recent import Position, cursor_of, parse_cursor
from api.trending import BASELINE_HOURS, baseline_hours, score
from api.windows import cover
from tests.unit.test_api_routes import LATEST, FakeEdits, FakeStats, client_for
from wikitide.keys import page_member


def test_a_day_is_read_as_whole_hours_and_the_minutes_left_over() -> None:
    hours, minutes = cover(LATEST - 1439, LATEST)
    assert len(minutes) <= 118 and len(hours) >= 23
    covered = sorted([m for h in hours for m in range(h * 60, h * 60 + 60)] + minutes)
    assert covered == list(range(LATEST - 1439, LATEST + 1))
    assert cover(600, 659) == ([10], [])
    assert cover(601, 659) == ([], list(range(601, 660)))
    assert cover(5, 4) == ([], [])


def test_wikis_are_sorted_by_events_with_their_bot_share() -> None:
    stats = FakeStats()
    stats.wikis[LATEST] = {"enwiki": {"events": 4, "edit": 2, "new": 1, "bot_events": 1, "bytes_added": 10},
                           "dewiki": {"events": 5, "bot_events": 5, "bytes_removed": 3}}
    stats.wikis[LATEST - 10] = {"enwiki": {"events": 7}}
    body = client_for(stats=stats).get("/v1/wikis?window=5m").get_json()
    assert body["window"] == "5m"
    assert body["wikis"] == [
        {"wiki": "dewiki", "events": 5, "edits": 0, "bot_events": 5, "bot_share": 1.0, "bytes_added": 0,
         "bytes_removed": 3},
        {"wiki": "enwiki", "events": 4, "edits": 3, "bot_events": 1, "bot_share": 0.25, "bytes_added": 10,
         "bytes_removed": 0},
    ]
    assert client_for(stats=stats).get("/v1/wikis?window=1h").get_json()["wikis"][0]["events"] == 11
    assert client_for().get("/v1/wikis?window=2h").status_code == 400


def test_a_page_view_has_its_latest_change_counts_per_window_and_last_changes() -> None:
    stats = FakeStats()
    member = page_member("enwiki", "Main Page")
    stats.pages[(LATEST, None)] = {member: 2}
    stats.pages[(LATEST - 3, None)] = {member: 1}
    stats.pages[(LATEST - 30, None)] = {member: 4}
    stats.pages[(LATEST - 600, None)] = {member: 8}
    edits = FakeEdits(latest={("enwiki", "Main Page"): {"rev_new": 9}})
    edits.changes[("enwiki", "Main Page")] = [{"rev_new": n} for n in range(9, 0, -1)]
    client = client_for(stats=stats, edits=edits)
    body = client.get("/v1/pages/enwiki/Main_Page?limit=3").get_json()
    assert body["edits"] == {"1m": 2, "5m": 3, "1h": 7, "24h": 15}
    assert body["latest_change"] == {"rev_new": 9}
    assert body["changes"] == [{"rev_new": 9}, {"rev_new": 8}, {"rev_new": 7}]
    assert client.get("/v1/pages/enwiki/Main%20Page").get_json()["edits"]["24h"] == 15
    slash = client_for(edits=FakeEdits(latest={("enwiki", "AC/DC"): {"rev_new": 1}}))
    assert slash.get("/v1/pages/enwiki/AC/DC").get_json()["latest_change"] == {"rev_new": 1}
    assert client.get("/v1/pages/enwiki/Nothing").status_code == 404


def test_a_page_that_jumps_from_nothing_trends_and_a_steady_one_does_not() -> None:
    stats = FakeStats()
    jump, steady = page_member("enwiki", "Jump"), page_member("enwiki", "Steady")
    for minute in range(LATEST - 4, LATEST + 1):
        stats.pages[(minute, None)] = {jump: 12 / 5 * 5 if minute == LATEST else 0, steady: 20}
    first_hour = (LATEST - 4) // 60
    stats.hours = {hour: {steady: 20 * 60} for hour in range(first_hour - BASELINE_HOURS, first_hour)}
    body = client_for(stats=stats).get("/v1/trending?window=5m").get_json()
    assert [page["title"] for page in body["pages"]] == ["Jump"]
    assert body["pages"][0] == {"wiki": "enwiki", "title": "Jump", "edits": 12, "baseline_edits": 0,
                                "expected_edits": 0.0, "score": 12.0}
    assert client_for().get("/v1/trending?window=24h").status_code == 400


def test_the_score_is_a_smoothed_poisson_z_score() -> None:
    expected, value = score(10, 72, 5)
    assert expected == 1.0
    assert value == (10 - 1) / math.sqrt(2)
    assert baseline_hours(600) == list(range(10 - BASELINE_HOURS, 10))


def test_recent_changes_filter_and_page_without_repeats_under_inserts() -> None:
    stats = FakeStats()
    docs = [{"key": f"enwiki#rev#{n:03}", "ms": n // 2, "wiki": "enwiki", "type": "edit" if n % 3 else "log",
             "namespace": n % 4, "bot": n % 5 == 0, "editor": "bot" if n % 5 == 0 else "user",
             "byte_delta": n - 50} for n in range(100, 0, -1)]
    stats.feed[None] = list(docs)
    client = client_for(stats=stats)
    seen: list[str] = []
    url = "/v1/edits/recent?type=edit&editor=human&limit=7"
    cursor = None
    while True:
        body = client.get(url + (f"&cursor={cursor}" if cursor else "")).get_json()
        seen += [doc["key"] for doc in body["edits"]]
        if cursor is None:  # a change stored after the first page shows at the top, not in the pages after it
            stats.feed[None].insert(0, {**docs[0], "key": "enwiki#rev#999", "ms": 500})
        cursor = body["next"]
        if cursor is None:
            break
    expected = [d["key"] for d in docs if d["type"] == "edit" and not d["bot"]]
    assert seen == expected
    big = client.get("/v1/edits/recent?min_bytes=45&namespace=2").get_json()["edits"]
    assert [d["key"] for d in big] == [d["key"] for d in docs if abs(d["byte_delta"]) >= 45 and d["namespace"] == 2]


def test_a_cursor_round_trips_and_a_bad_one_is_refused() -> None:
    position = Position(1716738000123, "meta#ab c/ü")
    assert parse_cursor(cursor_of(position)) == position
    response = client_for().get("/v1/edits/recent?cursor=yesterday")
    assert response.status_code == 400 and "cursor" in response.get_json()["error"]
    assert client_for().get("/v1/edits/recent?editor=robot").status_code == 400
    assert client_for().get("/v1/edits/recent?namespace=1e3").status_code == 400


def test_filters_name_what_they_match() -> None:
    doc = {"wiki": "enwiki", "type": "142", "namespace": 0, "bot": False, "editor": "temporary", "byte_delta": -7}
    assert parse_change_filter({"type": "other", "editor": "temporary", "min_bytes": "7"}).matches(doc)
    assert parse_change_filter({"editor": "human"}).matches(doc)
    assert not parse_change_filter({"editor": "anonymous"}).matches(doc)
    assert not parse_change_filter({"min_bytes": "8"}).matches(doc)
    assert not parse_change_filter({"min_bytes": "0"}).matches({**doc, "byte_delta": None})
