"""The fleet's checks themselves, on hand-made inputs: each one reports what it exists to catch."""

from collections import Counter

from tests.fleet import checker
from tests.fleet.order import children_before_parents, first_positions, page_order_violations
from tests.fleet.traffic import Sent

EXPECTED = checker.Expected({"a": 1, "b": 1, "c": 2})


def test_keys_held_twice_or_missing_or_unknown_are_reported() -> None:
    exact = checker.compare_keys("t", EXPECTED, Counter({"a": 1, "b": 1, "c": 1}))
    assert exact.ok
    report = checker.compare_keys("t", EXPECTED, Counter({"a": 2, "c": 1, "z": 1}))
    assert (report.lost, report.duplicated, report.unexpected, report.ok) == (1, 1, 1, False)


def test_minute_counts_above_or_below_the_distinct_events_are_reported() -> None:
    assert checker.compare_minutes("t", EXPECTED, {1: 2, 2: 1}).ok
    report = checker.compare_minutes("t", EXPECTED, {1: 3, 3: 1})
    assert (report.lost, report.duplicated, report.unexpected) == (1, 1, 1)
    assert not checker.Report((report,)).ok


def _sent(key: str, page: str, shard: str, sequence: str, is_copy: bool = False) -> Sent:
    return Sent(key, 0, page, shard, sequence, is_copy)


def test_a_page_processed_out_of_order_is_a_violation() -> None:
    sent = [_sent("a1", "A", "s0", "1"), _sent("b1", "B", "s0", "2"), _sent("a2", "A", "s1", "3")]
    in_order = first_positions([("s0", "1"), ("s1", "3"), ("s0", "2"), ("s1", "3")])
    assert page_order_violations(sent, in_order) == []
    swapped = first_positions([("s1", "3"), ("s0", "1"), ("s0", "2")])
    assert page_order_violations(sent, swapped) == ["page 'A': a2 processed before a1"]
    assert len(page_order_violations([*sent, _sent("c1", "C", "s1", "9")], in_order)) == 1  # not processed


def test_a_child_shard_processed_before_its_parent_ended_is_reported() -> None:
    parents = {"s0": [], "s1": ["s0"]}
    assert children_before_parents(parents, first_positions([("s0", "1"), ("s0", "2"), ("s1", "3")])) == []
    early = first_positions([("s0", "1"), ("s1", "3"), ("s0", "2")])
    assert children_before_parents(parents, early) == ["s1 started before s0 ended"]
