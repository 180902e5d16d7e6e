"""The HTTP surface over hand-written fakes of the ports: a fresh app per test, no service anywhere."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api import create_app
from api.filters import ChangeFilter
from api.ports import HealthChecks
from api.recent import Collector, Position, RecentPage
from wikitide.errors import ConfigError, DependencyUnavailable
from wikitide.keys import epoch_minute, page_member
from wikitide.settings import Settings

LATEST = epoch_minute(datetime(2024, 5, 26, 15, 40, tzinfo=UTC))


class FakeStats:
    """A `StatsStore` over dicts keyed like the Redis schema: (minute, wiki or None)."""

    def __init__(self, latest: int | None = LATEST) -> None:
        self.latest = latest
        self.counts: dict[tuple[int, str | None], dict[str, int]] = {}
        self.pages: dict[tuple[int, str | None], dict[str, float]] = {}
        self.feed: dict[str | None, list[dict[str, Any]]] = {}
        self.wikis: dict[int, dict[str, dict[str, int]]] = {}
        self.hours: dict[int, dict[str, int]] = {}
        self.asked_minutes: list[list[int]] = []

    def latest_minute(self) -> int | None:
        return self.latest

    def minute_counts(self, minutes: Sequence[int], wiki: str | None) -> list[Mapping[str, str | int]]:
        self.asked_minutes.append(list(minutes))
        return [self.counts.get((minute, wiki), {}) for minute in minutes]

    def page_scores(self, minutes: Sequence[int], wiki: str | None, limit: int) -> list[tuple[str, float]]:
        self.asked_minutes.append(list(minutes))
        return [pair for minute in minutes for pair in self.pages.get((minute, wiki), {}).items()]

    def wiki_totals(self, first: int, last: int) -> dict[str, dict[str, int]]:
        totals: dict[str, Counter[str]] = {}
        for minute in range(first, last + 1):
            for wiki, counts in self.wikis.get(minute, {}).items():
                totals.setdefault(wiki, Counter()).update(counts)
        return {wiki: dict(counts) for wiki, counts in totals.items()}

    def page_edits(self, wiki: str, title: str, spans: Sequence[tuple[int, int]]) -> list[int]:
        member = page_member(wiki, title)
        return [round(sum(self.pages.get((m, None), {}).get(member, 0) for m in range(low, high + 1)))
                for low, high in spans]

    def hour_page_edits(self, members: Sequence[str], hours: Sequence[int]) -> dict[str, int]:
        return {m: sum(self.hours.get(hour, {}).get(m, 0) for hour in hours) for m in members}

    def recent(self, matches: ChangeFilter, after: Position | None, limit: int) -> RecentPage:
        """`feed[wiki]` lists documents newest first, each with `ms` and `key` (the feed order)."""
        collector = Collector(matches, after, limit)
        for doc in self.feed.get(matches.single_wiki, []):
            position = Position(doc["ms"], doc["key"])
            if collector.wants(position) and not collector.offer(position, doc):
                break
        return collector.page(None)


class FakeEdits:
    def __init__(
        self,
        docs: dict[tuple[str, int], dict[str, Any]] | None = None,
        latest: dict[tuple[str, str], dict[str, Any]] | None = None,
    ) -> None:
        self.docs = docs or {}
        self.latest = latest or {}
        self.changes: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def get_edit(self, wiki: str, rev_id: int) -> dict[str, Any] | None:
        return self.docs.get((wiki, rev_id))

    def latest_change(self, wiki: str, title: str) -> dict[str, Any] | None:
        return self.latest.get((wiki, title))

    def page_changes(self, wiki: str, title: str, limit: int) -> list[dict[str, Any]]:
        return self.changes.get((wiki, title), [])[:limit]


class DownStats(FakeStats):
    def latest_minute(self) -> int | None:
        raise DependencyUnavailable("redis: connection refused")


def make_app(
    stats: FakeStats | None = None, edits: FakeEdits | None = None, checks: HealthChecks | None = None
) -> Flask:
    return create_app(stats=stats or FakeStats(), edits=edits or FakeEdits(), health_checks=checks or {})


def client_for(**kwargs: Any) -> FlaskClient:
    return make_app(**kwargs).test_client()


def test_stats_sums_the_window_ending_with_the_latest_minute() -> None:
    stats = FakeStats()
    stats.counts[(LATEST, None)] = {"events": 3, "edit": 2, "log": 1, "bot_events": 1, "human_events": 2}
    stats.counts[(LATEST - 4, None)] = {"events": 5, "new": 5, "bytes_added": 100, "bytes_removed": 7}
    stats.counts[(LATEST - 5, None)] = {"events": 1000, "edit": 1000}

    body = client_for(stats=stats).get("/v1/stats?window=5m").get_json()

    assert stats.asked_minutes == [list(range(LATEST - 4, LATEST + 1))]
    assert body == {
        "window": "5m",
        "wiki": None,
        "events": 8,
        "by_type": {"edit": 2, "new": 5, "log": 1, "categorize": 0, "other": 0},
        "bot_events": 1,
        "human_events": 2,
        "bytes_added": 100,
        "bytes_removed": 7,
        "synthetic_events": 0,
        "as_of": "2024-05-26T15:40:00Z",
    }


def test_stats_for_one_wiki_reads_that_wikis_hashes() -> None:
    stats = FakeStats()
    stats.counts[(LATEST, None)] = {"events": 9}
    stats.counts[(LATEST, "dewiki")] = {"events": 2, "synthetic_events": 2}

    body = client_for(stats=stats).get("/v1/stats?window=1m&wiki=dewiki").get_json()

    assert (body["wiki"], body["events"], body["synthetic_events"]) == ("dewiki", 2, 2)


def test_stats_before_any_event_are_zero_with_no_as_of() -> None:
    response = client_for(stats=FakeStats(latest=None)).get("/v1/stats?window=24h")
    assert response.status_code == 200
    assert response.get_json()["events"] == 0
    assert response.get_json()["as_of"] is None


@pytest.mark.parametrize(
    "url",
    [
        "/v1/stats",
        "/v1/stats?window=2m",
        "/v1/stats?window=5m&wiki=",
        "/v1/pages/top?window=1d",
        "/v1/pages/top?window=1h&limit=0",
        "/v1/pages/top?window=1h&limit=101",
        "/v1/pages/top?window=1h&limit=x",
        "/v1/edits/recent?limit=501",
        "/v1/edits/recent?limit=0",
        "/v1/edits/enwiki/0",
        "/v1/edits/enwiki/-5",
        "/v1/edits/enwiki/abc",
    ],
)
def test_bad_parameters_answer_400_with_a_message(url: str) -> None:
    response = client_for().get(url)
    assert response.status_code == 400
    assert response.is_json
    assert isinstance(response.get_json()["error"], str)
    assert response.get_json()["error"]


def test_top_pages_rank_by_edits_then_title_then_wiki_and_respect_limit() -> None:
    stats = FakeStats()
    stats.pages[(LATEST, None)] = {page_member("enwiki", "B"): 2, page_member("frwiki", "A"): 1}
    stats.pages[(LATEST - 1, None)] = {page_member("dewiki", "A"): 2, page_member("frwiki", "A"): 1}
    stats.pages[(LATEST - 5, None)] = {page_member("enwiki", "Old"): 50}
    client = client_for(stats=stats)

    body = client.get("/v1/pages/top?window=5m").get_json()
    limited = client.get("/v1/pages/top?window=5m&limit=2").get_json()

    assert body["pages"] == [
        {"wiki": "dewiki", "title": "A", "edits": 2},
        {"wiki": "frwiki", "title": "A", "edits": 2},
        {"wiki": "enwiki", "title": "B", "edits": 2},
    ]
    assert (body["window"], body["wiki"]) == ("5m", None)
    assert [page["wiki"] for page in limited["pages"]] == ["dewiki", "frwiki"]


def test_top_pages_default_to_ten() -> None:
    stats = FakeStats()
    stats.pages[(LATEST, None)] = {page_member("enwiki", f"P{i:02}"): 1 for i in range(15)}
    assert len(client_for(stats=stats).get("/v1/pages/top?window=1m").get_json()["pages"]) == 10


def test_recent_edits_pass_the_limit_and_wiki_through() -> None:
    stats = FakeStats()
    stats.feed[None] = [{"key": f"enwiki#rev#{n:02}", "ms": n, "wiki": "enwiki"} for n in range(30, 0, -1)]
    stats.feed["frwiki"] = [{"key": "frwiki#rev#1", "wiki": "frwiki", "ms": 5}]
    client = client_for(stats=stats)

    assert len(client.get("/v1/edits/recent").get_json()["edits"]) == 20
    assert client.get("/v1/edits/recent?limit=3").get_json()["edits"][0]["key"] == "enwiki#rev#30"
    assert client.get("/v1/edits/recent?wiki=frwiki").get_json() == {
        "edits": [{"key": "frwiki#rev#1", "wiki": "frwiki", "ms": 5}], "next": None,
    }


def test_one_edit_is_the_stored_document() -> None:
    doc = {"key": "enwiki#rev#42", "wiki": "enwiki", "title": "Foo", "rev_new": 42}
    response = client_for(edits=FakeEdits({("enwiki", 42): doc})).get("/v1/edits/enwiki/42")
    assert response.status_code == 200
    assert response.get_json() == doc


def test_unknown_edit_is_a_json_404() -> None:
    response = client_for().get("/v1/edits/enwiki/42")
    assert response.status_code == 404
    assert "42" in response.get_json()["error"]


def test_the_latest_change_of_a_page_is_found_by_wiki_and_title() -> None:
    doc = {"key": "enwiki#rev#7", "wiki": "enwiki", "title": "Talk:A/B c", "rev_new": 7}
    api = client_for(edits=FakeEdits(latest={("enwiki", "Talk:A/B c"): doc}))
    found = api.get("/v1/pages/latest", query_string={"wiki": "enwiki", "title": "Talk:A/B c"})
    missing = api.get("/v1/pages/latest", query_string={"wiki": "enwiki", "title": "Nope"})
    no_title = api.get("/v1/pages/latest?wiki=enwiki")
    assert (found.status_code, found.get_json()) == (200, doc)
    assert missing.status_code == 404
    assert no_title.status_code == 400
    assert "title" in no_title.get_json()["error"]


def test_unknown_route_is_a_json_404() -> None:
    response = client_for().get("/v2/nothing")
    assert response.status_code == 404
    assert response.is_json
    assert "error" in response.get_json()


def test_wrong_method_is_a_json_405() -> None:
    response = client_for().post("/v1/stats?window=1m")
    assert response.status_code == 405
    assert "error" in response.get_json()


def test_unavailable_store_answers_503() -> None:
    response = client_for(stats=DownStats()).get("/v1/stats?window=1m")
    assert response.status_code == 503
    assert "redis" in response.get_json()["error"]


def test_health_is_ok_when_every_dependency_answers() -> None:
    checks = {"redis": lambda: True, "dynamodb": lambda: {}, "kinesis": lambda: {}}
    response = client_for(checks=checks).get("/health")
    body = response.get_json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert set(body["dependencies"]) == {"redis", "dynamodb", "kinesis"}
    assert all(dep["ok"] and "error" not in dep for dep in body["dependencies"].values())


def test_health_says_starting_and_why_until_an_event_is_counted() -> None:
    checks = {"redis": lambda: True, "dynamodb": lambda: {}, "kinesis": lambda: {}}
    starting = client_for(checks=checks, stats=FakeStats(latest=None)).get("/health")
    body = starting.get_json()
    assert starting.status_code == 200  # the API itself is fine: a load balancer keeps it
    assert body["status"] == "starting"
    assert body["pipeline"]["state"] == "starting" and "KCL workers are starting" in body["pipeline"]["reason"]

    counting = client_for(checks=checks).get("/health").get_json()
    assert counting["status"] == "ok"
    assert counting["pipeline"] == {"state": "counting", "latest_minute": "2024-05-26T15:40:00Z"}

    unreadable = client_for(checks=checks, stats=DownStats()).get("/health").get_json()
    assert unreadable["status"] == "starting" and "could not be read" in unreadable["pipeline"]["reason"]


def test_health_is_degraded_with_503_when_one_dependency_fails() -> None:
    def refuse() -> None:
        raise ConnectionError("refused")

    response = client_for(checks={"redis": lambda: True, "kinesis": refuse}).get("/health")
    body = response.get_json()
    assert response.status_code == 503
    assert body["status"] == "degraded"
    assert body["dependencies"]["redis"]["ok"] is True
    assert body["dependencies"]["kinesis"]["ok"] is False
    assert body["dependencies"]["kinesis"]["error"] == "could not be reached"


def test_dashboard_is_served_without_external_resources() -> None:
    client = client_for()
    page = client.get("/")
    script = client.get("/static/dashboard.js")
    assert page.status_code == 200
    assert "text/html" in page.content_type
    html = page.get_data(as_text=True)
    assert "SYNTHETIC DATA" in html
    assert script.status_code == 200
    js = script.get_data(as_text=True)
    html_links = re.findall(r'(?:src|href)="([^"]*)"', html)
    js_fetches = re.findall(r"getJSON\(`([^`]*)`", js)
    assert "/static/dashboard.js" in html_links
    assert all(link.startswith("/") and not link.startswith("//") for link in html_links)
    assert {path.split("?")[0] for path in js_fetches} == {"/v1/stats", "/v1/pages/top"}
    # The ticker and the live chart follow the stream of this same origin.
    assert re.findall(r"new EventSource\(`([^`$?]*)", js) == ["/v1/stream"]
    assert "setInterval(refresh, POLL_MS)" in js and "POLL_MS = 2000" in js
    page.close()
    script.close()


def test_openapi_document_lists_every_endpoint() -> None:
    response = client_for().get("/openapi.json")
    doc = response.get_json()
    assert response.status_code == 200
    assert doc["openapi"].startswith("3.")
    app = make_app()
    # Files are not endpoints: the dashboard's (`/static`) and Swagger UI's (`/docs/assets`).
    routes = {
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for rule in app.url_map.iter_rules()
        if not rule.rule.startswith(("/static/", "/docs/assets/"))
    }
    assert routes == set(doc["paths"])
    response.close()


def test_missing_redis_url_fails_at_factory_time_naming_it() -> None:
    settings = Settings(
        stack_name="wikitide",
        region="us-east-1",
        redis_url=None,
        kinesis_endpoint=None,
        dynamodb_endpoint=None,
        contact="",
    )
    with pytest.raises(ConfigError, match="REDIS_URL"):
        create_app(settings, edits=FakeEdits(), health_checks={})


def test_each_app_has_its_own_ports() -> None:
    first, second = FakeStats(), FakeStats(latest=None)
    first.counts[(LATEST, None)] = {"events": 1}
    assert make_app(stats=first).test_client().get("/v1/stats?window=1m").get_json()["events"] == 1
    assert make_app(stats=second).test_client().get("/v1/stats?window=1m").get_json()["events"] == 0
