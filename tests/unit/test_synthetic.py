import itertools
import json
import re
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from producer.frames import Frame
from producer.synthetic import SYNTHETIC_STREAM, synthetic_frames
from wikitide.events import parse_change

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def take(n: int, **kwargs: Any) -> list[Frame]:
    return list(itertools.islice(synthetic_frames(**kwargs), n))


@pytest.fixture(scope="module")
def sample() -> list[dict[str, Any]]:
    return [json.loads(f.data) for f in take(5000, seed=7, start=START)]


def test_same_seed_and_start_give_identical_frames() -> None:
    assert take(500, seed=1, start=START) == take(500, seed=1, start=START)


def test_different_seeds_give_different_frames() -> None:
    first, second = take(50, seed=1, start=START), take(50, seed=2, start=START)

    assert [f.data for f in first] != [f.data for f in second]


def test_every_event_is_labelled_synthetic(sample: list[dict[str, Any]]) -> None:
    assert {e["meta"]["stream"] for e in sample} == {SYNTHETIC_STREAM}
    assert {e["meta"]["topic"] for e in sample} == {SYNTHETIC_STREAM}
    assert all(e["comment"].startswith("[synthetic] ") for e in sample)


def test_frame_ids_name_the_synthetic_topic_and_count_up() -> None:
    frames = take(100, seed=0, start=START)

    ids = [json.loads(f.id or "") for f in frames]

    assert ids[0] == [{"topic": "wikitide.synthetic", "partition": 0, "offset": 0}]
    assert [i[0]["offset"] for i in ids] == list(range(100))
    assert [json.loads(f.data)["meta"]["offset"] for f in frames] == list(range(100))


def test_type_bot_and_wiki_mix_resembles_the_live_stream(sample: list[dict[str, Any]]) -> None:
    share = {t: n / len(sample) for t, n in Counter(e["type"] for e in sample).items()}

    assert share["edit"] == pytest.approx(0.63, abs=0.03)
    assert share["categorize"] == pytest.approx(0.30, abs=0.03)
    assert share["log"] == pytest.approx(0.05, abs=0.015)
    assert share["new"] == pytest.approx(0.02, abs=0.01)
    assert sum(e["bot"] for e in sample) / len(sample) == pytest.approx(0.20, abs=0.03)
    wikis = {e["wiki"] for e in sample}
    assert len(wikis) >= 12
    assert {"enwiki", "commonswiki", "wikidatawiki"} <= wikis


def test_some_editors_are_temporary_accounts(sample: list[dict[str, Any]]) -> None:
    temporary = [e["user"] for e in sample if e["user"].startswith("~")]

    assert len(temporary) > 100
    assert all(re.fullmatch(r"~2025-\d{5}-\d{2}", user) for user in temporary)


def test_a_few_pages_are_much_busier_than_the_rest(sample: list[dict[str, Any]]) -> None:
    edits_per_page = Counter((e["wiki"], e["title"]) for e in sample if e["type"] == "edit")

    top = [n for _, n in edits_per_page.most_common(3)]

    assert min(top) >= 10 * statistics.median(edits_per_page.values())


def test_only_edits_and_page_creations_carry_revision_and_length(sample: list[dict[str, Any]]) -> None:
    for event in sample:
        if event["type"] == "edit":
            assert event["revision"]["new"] > event["revision"]["old"]
            assert set(event["length"]) == {"old", "new"}
            assert isinstance(event["minor"], bool)
        elif event["type"] == "new":
            assert set(event["revision"]) == {"new"}
            assert set(event["length"]) == {"new"}
        else:
            assert "revision" not in event and "length" not in event and "minor" not in event


def test_identifiers_are_unique(sample: list[dict[str, Any]]) -> None:
    assert len({e["meta"]["id"] for e in sample}) == len(sample)
    assert len({(e["wiki"], e["id"]) for e in sample}) == len(sample)
    revisions = [(e["wiki"], e["revision"]["new"]) for e in sample if "revision" in e]
    assert len(set(revisions)) == len(revisions)


def test_meta_dt_advances_one_over_rate_per_event() -> None:
    events = [json.loads(f.data) for f in take(31, seed=0, start=START, rate=10.0)]

    assert events[0]["meta"]["dt"] == "2026-01-01T12:00:00.000Z"
    assert events[1]["meta"]["dt"] == "2026-01-01T12:00:00.100Z"
    assert events[30]["meta"]["dt"] == "2026-01-01T12:00:03.000Z"
    assert events[30]["timestamp"] == int((START + timedelta(seconds=3)).timestamp())


def test_naive_start_is_taken_as_utc() -> None:
    naive = take(3, seed=0, start=START.replace(tzinfo=None))

    assert naive == take(3, seed=0, start=START)


def test_every_event_parses_as_a_recent_change_from_the_synthetic_stream() -> None:
    changes = [parse_change(f.data) for f in take(2000, seed=3, start=START)]

    assert {c.stream for c in changes} == {SYNTHETIC_STREAM}
    assert {c.type for c in changes} == {"edit", "categorize", "log", "new"}
    assert all(c.dt >= START for c in changes)


def test_non_positive_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        synthetic_frames(rate=0)
