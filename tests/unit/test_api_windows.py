"""The API's pure core: windows, counter sums, page ranking and parameter validation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.errors import InvalidParameter
from api.params import parse_limit, parse_rev_id, parse_wiki, parse_wiki_filter
from api.windows import (
    PageEdits,
    minute_iso,
    parse_window,
    rank_pages,
    stats_body,
    sum_counts,
    window_minutes,
)
from wikitide.keys import COUNT_FIELDS, epoch_minute


@pytest.mark.parametrize(("raw", "minutes"), [("1m", 1), ("5m", 5), ("1h", 60), ("24h", 1440)])
def test_named_windows_parse_to_minutes(raw: str, minutes: int) -> None:
    assert parse_window(raw) == minutes


@pytest.mark.parametrize("raw", [None, "", "2m", "1H", "60", "1d", " 5m"])
def test_other_windows_are_invalid_parameters(raw: str | None) -> None:
    with pytest.raises(InvalidParameter, match="window"):
        parse_window(raw)


def test_invalid_parameter_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_window("7m")


def test_window_ends_with_and_includes_the_latest_minute() -> None:
    assert window_minutes(1000, 5) == [996, 997, 998, 999, 1000]
    assert window_minutes(1000, 1) == [1000]
    day = window_minutes(30_000_000, 1440)
    assert len(day) == 1440
    assert (day[0], day[-1]) == (30_000_000 - 1439, 30_000_000)


def test_sum_counts_adds_fields_and_treats_absent_ones_as_zero() -> None:
    totals = sum_counts([{"events": "3", "edit": "2", "bytes_added": "40"}, {}, {"events": 1, "log": "1"}])
    assert totals["events"] == 4
    assert totals["edit"] == 2
    assert totals["log"] == 1
    assert totals["bytes_added"] == 40
    assert totals["new"] == 0
    assert set(totals) == set(COUNT_FIELDS)


def test_sum_counts_ignores_fields_outside_the_schema() -> None:
    assert "unknown" not in sum_counts([{"unknown": "5", "events": "1"}])


def test_sum_of_nothing_is_all_zeros() -> None:
    assert sum_counts([]) == dict.fromkeys(COUNT_FIELDS, 0)


def test_minute_iso_is_the_start_of_the_minute_in_utc() -> None:
    minute = epoch_minute(datetime(2024, 5, 17, 13, 42, 59, tzinfo=UTC))
    assert minute_iso(minute) == "2024-05-17T13:42:00Z"


def test_stats_body_groups_types_and_reports_the_minute() -> None:
    totals = dict.fromkeys(COUNT_FIELDS, 0) | {"events": 7, "edit": 4, "other": 3, "synthetic_events": 7}
    body = stats_body("5m", "enwiki", totals, 28_612_302)
    assert body["by_type"] == {"edit": 4, "new": 0, "log": 0, "categorize": 0, "other": 3}
    assert body["events"] == 7
    assert body["synthetic_events"] == 7
    assert body["wiki"] == "enwiki"
    assert body["as_of"] == minute_iso(28_612_302)


def test_stats_body_without_data_has_no_as_of() -> None:
    assert stats_body("1m", None, sum_counts([]), None)["as_of"] is None


def test_rank_pages_orders_by_edits_then_title_then_wiki() -> None:
    scores = [
        ("enwiki\tB", 2.0),
        ("frwiki\tA", 2.0),
        ("enwiki\tA", 2.0),
        ("dewiki\tZ", 5.0),
        ("enwiki\tC", 1.0),
    ]
    assert rank_pages(scores, 10) == [
        PageEdits("dewiki", "Z", 5),
        PageEdits("enwiki", "A", 2),
        PageEdits("frwiki", "A", 2),
        PageEdits("enwiki", "B", 2),
        PageEdits("enwiki", "C", 1),
    ]


def test_rank_pages_sums_a_member_seen_in_several_minutes() -> None:
    ranked = rank_pages([("enwiki\tA", 1.0), ("enwiki\tB", 2.0), ("enwiki\tA", 2.0)], 1)
    assert ranked == [PageEdits("enwiki", "A", 3)]


def test_rank_pages_keeps_tabs_inside_titles_and_truncates() -> None:
    ranked = rank_pages([("enwiki\tTab\there", 3.0), ("enwiki\tOther", 1.0)], 1)
    assert ranked == [PageEdits("enwiki", "Tab\there", 3)]


@pytest.mark.parametrize(("raw", "expected"), [(None, 10), ("1", 1), ("100", 100)])
def test_limit_defaults_and_bounds(raw: str | None, expected: int) -> None:
    assert parse_limit(raw, default=10, maximum=100) == expected


@pytest.mark.parametrize("raw", ["0", "101", "-1", "", "ten", "²", "1.5", "0" * 5000 + "1", "9" * 5000])
def test_limit_out_of_range_or_not_a_number_is_invalid(raw: str) -> None:
    with pytest.raises(InvalidParameter, match="limit"):
        parse_limit(raw, default=10, maximum=100)


@pytest.mark.parametrize("raw", ["0", "-3", "abc", "", "01"])
def test_rev_id_must_be_positive(raw: str) -> None:
    with pytest.raises(InvalidParameter, match="rev_id"):
        parse_rev_id(raw)


def test_rev_id_parses() -> None:
    assert parse_rev_id("1234567890") == 1234567890


def test_wiki_names_are_checked_only_when_given() -> None:
    assert parse_wiki_filter(None) is None
    assert parse_wiki_filter("zh_min_nanwiki") == "zh_min_nanwiki"
    with pytest.raises(InvalidParameter, match="wiki"):
        parse_wiki_filter("")
    with pytest.raises(InvalidParameter, match="wiki"):
        parse_wiki("en wiki:x")
