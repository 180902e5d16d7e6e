"""A generated day of the live stream through the processor's Redis path into a real redis-server, and the
queries of `/v1/wikis`, `/v1/trending`, `/v1/pages/{wiki}/{title}` and `/v1/edits/recent` checked exact against a
plain computation over the same events (plain `json` and arithmetic, not the code under test).

What is loaded is `tests/day.py`'s generated day: about 50,000 events over 1,440 minutes of event time on 900
wikis (the live stream's number of wikis; its volume, ~2.6 M events on ~1 M pages, scaled down about 50 times to
keep the test near a minute), through the processor's own `process_batch` and `RedisMirror`.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from api import queries
from api.filters import parse_change_filter
from api.recent import parse_cursor
from api.redis_stats import RedisStats
from kcl_app.redis_mirror import Rebuilder, RedisMirror
from tests.day import BURST, FIRST_MINUTE, MINUTES, STEADY, generate, load
from tests.unit.fakes import FakeEventStore, FakeLedger
from wikitide.keys import RECENT_LIMIT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(own_redis: redis.Redis) -> redis.Redis:
    return own_redis


@pytest.fixture(scope="module")
def loaded(client: redis.Redis) -> tuple[list[dict[str, Any]], tuple[FakeLedger, FakeEventStore]]:
    events = generate()
    client.config_set("slowlog-max-len", 100_000)
    client.config_set("slowlog-log-slower-than", 1000)
    client.slowlog_reset()
    cpu = time.process_time()
    redis_cpu = _redis_cpu(client)
    stored = load(client, events)
    cpu, redis_cpu = time.process_time() - cpu, _redis_cpu(client) - redis_cpu
    slow = client.slowlog_get(100_000)
    slowest = max(slow, key=lambda entry: entry["duration"], default=None)
    print(f"\nloading: {cpu:.1f} s of CPU here, {redis_cpu:.1f} s in Redis; {len(slow)} Redis commands over 1 ms" + (
        f", the slowest {slowest['duration']} µs ({_name(slowest)})" if slowest else ""))
    return events, stored


# The expectations, computed from the raw events alone.

def minute_of(raw: dict[str, Any]) -> int:
    return int(raw["timestamp"]) // 60


def is_revision(raw: dict[str, Any]) -> bool:
    return raw["type"] in ("edit", "new")


def expected_wikis(events: list[dict[str, Any]], first: int, last: int) -> list[dict[str, Any]]:
    rows: dict[str, Counter[str]] = {}
    for raw in events:
        if not first <= minute_of(raw) <= last:
            continue
        row = rows.setdefault(raw["wiki"], Counter())
        row["events"] += 1
        row["edits"] += is_revision(raw)
        row["bot_events"] += raw["bot"]
        if is_revision(raw):
            delta = raw["length"]["new"] - raw["length"].get("old", 0)
            row["bytes_added" if delta > 0 else "bytes_removed"] += abs(delta)
    return sorted(
        ({"wiki": wiki, "events": r["events"], "edits": r["edits"], "bot_events": r["bot_events"],
          "bot_share": round(r["bot_events"] / r["events"], 4), "bytes_added": r["bytes_added"],
          "bytes_removed": r["bytes_removed"]} for wiki, r in rows.items()),
        key=lambda row: (-row["events"], row["wiki"]),
    )


def page_counts(events: list[dict[str, Any]], first: int, last: int, wiki: str | None = None) -> Counter[tuple]:
    return Counter((raw["wiki"], raw["title"]) for raw in events
                   if is_revision(raw) and first <= minute_of(raw) <= last and wiki in (None, raw["wiki"]))


def expected_trending(events: list[dict[str, Any]], last: int, length: int, wiki: str | None) -> list[dict]:
    """The documented rule: the 500 most edited pages of the window (edits, then title, then wiki) with at least 3
    edits; baseline the 6 whole hours before the window's first hour; (w - e) / sqrt(e + 1) above 0; top 20."""
    first = last - length + 1
    window = page_counts(events, first, last, wiki)
    top = sorted(window.items(), key=lambda item: (-item[1], item[0][1], item[0][0]))[:500]
    start_hour = first // 60
    baseline = page_counts(events, (start_hour - 6) * 60, start_hour * 60 - 1)
    scored = []
    for page, edits in top:
        if edits < 3:
            continue
        expected = baseline[page] * length / 360
        score = (edits - expected) / math.sqrt(expected + 1)
        if score > 0:
            scored.append((score, edits, page, baseline[page], expected))
    scored.sort(key=lambda s: (-s[0], -s[1], s[2][1], s[2][0]))
    return [{"wiki": p[0], "title": p[1], "edits": e, "baseline_edits": b, "expected_edits": round(x, 3),
             "score": round(s, 3)} for s, e, p, b, x in scored[:20]]


def newest_first(events: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """`(de-duplication key, event)` of every event by event time in ms, then key, newest first."""
    def key(raw: dict[str, Any]) -> str:
        return f"{raw['wiki']}#rev#{raw['revision']['new']}" if is_revision(raw) else f"{raw['wiki']}#rc#{raw['id']}"

    def ms(raw: dict[str, Any]) -> int:
        return int(datetime.strptime(raw["meta"]["dt"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
                   .timestamp() * 1000)

    return [(k, raw) for _, k, raw in sorted(((ms(raw), key(raw), raw) for raw in events), reverse=True)]


def expected_recent(ordered: list[tuple[str, dict[str, Any]]], matches: dict[str, Any]) -> list[str]:
    """The keys of the recent changes Redis keeps (the newest 500 of the list read) that match, newest first."""
    kept = [(key, raw) for key, raw in ordered if matches.get("wiki") in (None, raw["wiki"])][:RECENT_LIMIT]
    return [key for key, raw in kept
            if matches.get("type") in (None, raw["type"])
            and matches.get("namespace") in (None, raw["namespace"])
            and editor_matches(raw, matches.get("editor"))
            and (matches.get("min_bytes") is None or (
                is_revision(raw) and abs(raw["length"]["new"] - raw["length"].get("old", 0)) >= matches["min_bytes"]))]


def editor_matches(raw: dict[str, Any], editor: str | None) -> bool:
    if editor is None:
        return True
    if editor in ("bot", "human"):
        return bool(raw["bot"]) == (editor == "bot")
    if raw["bot"]:
        return False
    return raw["user"].startswith("~") if editor == "temporary" else raw["user"][0].isdigit()


LATEST = FIRST_MINUTE + MINUTES - 1
PAGE_WINDOWS = (1, 5, 60, 1440)


@pytest.fixture(scope="module")
def questions(loaded: tuple[list[dict[str, Any]], Any]) -> list[tuple[Any, ...]]:
    """Every windowed query asked of the day: the wikis of each window, trending pages of each trending window
    overall and for three wikis, and the edits per window of 53 pages (the busiest, a sample, and unknown ones)."""
    events, _ = loaded
    busiest = [wiki for wiki, _ in Counter(raw["wiki"] for raw in events).most_common()]
    asked: list[tuple[Any, ...]] = [("wikis", window) for window in ("1m", "5m", "1h", "24h")]
    asked += [("trending", window, wiki) for window in ("1m", "5m", "1h")
              for wiki in (None, busiest[0], busiest[1], busiest[40])]
    day = page_counts(events, LATEST - 1439, LATEST)
    pages = [STEADY, BURST, ("w999wiki", "Nothing"), *[page for page, _ in day.most_common(20)],
             *random.Random(3).sample(sorted(day), 30)]
    return asked + [("page", wiki, title) for wiki, title in pages]


@pytest.fixture(scope="module")
def expected(loaded: tuple[list[dict[str, Any]], Any], questions: list[tuple[Any, ...]]) -> list[Any]:
    events, _ = loaded
    lengths = {"1m": 1, "5m": 5, "1h": 60, "24h": 1440}
    by_page: dict[tuple[str, str], Counter[int]] = {}
    for raw in events:
        if is_revision(raw):
            by_page.setdefault((raw["wiki"], raw["title"]), Counter())[minute_of(raw)] += 1
    answers: list[Any] = []
    for kind, *args in questions:
        if kind == "wikis":
            answers.append(expected_wikis(events, LATEST - lengths[args[0]] + 1, LATEST))
        elif kind == "trending":
            answers.append(expected_trending(events, LATEST, lengths[args[0]], args[1]))
        else:
            minutes = by_page.get((args[0], args[1]), Counter())
            answers.append([sum(n for m, n in minutes.items() if m > LATEST - length) for length in PAGE_WINDOWS])
    return answers


def ask(client: redis.Redis, questions: list[tuple[Any, ...]]) -> list[Any]:
    stats = RedisStats(client)
    assert stats.latest_minute() == LATEST
    answers: list[Any] = []
    for kind, *args in questions:
        if kind == "wikis":
            answers.append(queries.wikis(stats, args[0])["wikis"])
        elif kind == "trending":
            answers.append(queries.trending_pages(stats, args[0], args[1], 20)["pages"])
        else:
            answers.append(stats.page_edits(args[0], args[1], [(LATEST - n + 1, LATEST) for n in PAGE_WINDOWS]))
    return answers


def test_a_day_of_queries_is_exact(
    client: redis.Redis, loaded: tuple[list[dict[str, Any]], Any], questions: list[tuple[Any, ...]],
    expected: list[Any],
) -> None:
    events, _ = loaded
    client.config_set("slowlog-log-slower-than", 0)
    client.slowlog_reset()
    hgetall_before = _calls(client, "hgetall")
    got = ask(client, questions)
    logged = [entry for entry in client.slowlog_get(100_000) if not _name(entry).upper().startswith("SLOWLOG")]
    slowest = max(logged, key=lambda entry: entry["duration"])
    client.config_set("slowlog-log-slower-than", 10_000)
    for question, answer, truth in zip(questions, got, expected, strict=True):
        assert answer == truth, question
    assert all(expected[:4])  # every window has wikis
    # 1m and 5m read their minutes (6 hashes); 1h and 24h one rolling hash each, not 1,500 minutes.
    assert _calls(client, "hgetall") - hgetall_before <= 8
    trending_5m = got[questions.index(("trending", "5m", None))]
    assert trending_5m[0]["title"] == BURST[1] and trending_5m[0]["edits"] == 12
    assert STEADY[1] not in [page["title"] for page in trending_5m]
    print(f"\n{len(events)} events over {MINUTES} minutes, {len({e['wiki'] for e in events})} wikis, "
          f"{len({(e['wiki'], e['title']) for e in events})} pages; {len(questions)} answers checked; slowest Redis "
          f"command among them {slowest['duration']} µs ({_name(slowest)})")


def test_recent_changes_page_through_exactly(client: redis.Redis, loaded: tuple[list[dict[str, Any]], Any]) -> None:
    events, _ = loaded
    ordered = newest_first(events)
    stats = RedisStats(client)
    filters: list[dict[str, Any]] = [
        {}, {"wiki": "w000wiki"}, {"type": "log"}, {"editor": "bot"}, {"editor": "human", "namespace": 0},
        {"editor": "temporary"}, {"editor": "anonymous", "min_bytes": 300}, {"wiki": "w002wiki", "type": "edit"},
    ]
    for matches in filters:
        keys_seen: list[str] = []
        after = None
        for _ in range(100):
            body = queries.recent_edits(stats, parse_change_filter({k: str(v) for k, v in matches.items()}), after, 37)
            keys_seen += [doc["key"] for doc in body["edits"]]
            if body["next"] is None:
                break
            after = parse_cursor(body["next"])
        assert keys_seen == expected_recent(ordered, matches), matches


def test_a_rebuild_from_the_cells_gives_the_same_answers(
    client: redis.Redis, loaded: tuple[list[dict[str, Any]], Any], questions: list[tuple[Any, ...]],
    expected: list[Any],
) -> None:
    _, (ledger, claims) = loaded
    client.flushdb()
    rebuilder = Rebuilder(client, RedisMirror(client), lambda: list(ledger.cells.values()), claims.page_edits)
    assert rebuilder.rebuild() is not None
    assert ask(client, questions) == expected


def _calls(client: redis.Redis, command: str) -> int:
    return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def _name(entry: dict[str, Any]) -> str:
    """A slow-log entry's command and first key."""
    command = entry["command"]
    words = command.split() if isinstance(command, bytes) else str(command).split()
    return " ".join(word.decode(errors="replace") if isinstance(word, bytes) else word for word in words[:2])


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
