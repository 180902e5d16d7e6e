"""The fleet's checks themselves, on hand-made inputs: each one reports what it exists to catch."""

from collections import Counter

from tests.fleet import caught_up, checker
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


def _sent_to(key: str, minute: int, wiki: str, page: tuple[str, str] | None) -> Sent:
    return Sent(key, minute, f"{wiki}\t{page[1] if page else key}", "s0", "1", False, wiki=wiki, counted_page=page)


def test_counts_per_wiki_and_per_page_come_from_the_distinct_keys_sent() -> None:
    sent = [
        _sent_to("enwiki#rev#1", 10, "enwiki", ("enwiki", "A")),
        _sent_to("enwiki#rev#1", 10, "enwiki", ("enwiki", "A")),  # a copy: the same key
        _sent_to("enwiki#rev#2", 10, "enwiki", ("enwiki", "A")),
        _sent_to("dewiki#rc#7", 11, "dewiki", None),  # a log entry: no page count
    ]
    expected = checker.Expected.of(sent)
    assert expected.per_minute == Counter({10: 2, 11: 1})
    assert expected.per_wiki_minute == Counter({(10, "enwiki"): 2, (11, "dewiki"): 1})
    assert expected.per_page_minute == Counter({(10, "enwiki", "A"): 2})
    assert checker.compare_counts("t", expected.per_page_minute, {(10, "enwiki", "A"): 2}).ok
    report = checker.compare_counts("t", expected.per_wiki_minute, {(10, "enwiki"): 3, (11, "frwiki"): 1})
    assert (report.lost, report.duplicated, report.unexpected) == (1, 1, 1)


def test_a_shard_is_caught_up_at_its_last_record_or_its_end() -> None:
    def state(checkpoint: str | None, closed: bool = False) -> caught_up.ShardState:
        return caught_up.ShardState("s0", last_sent=100, checkpoint=checkpoint, closed=closed, ending_sequence=None)

    assert state("100").caught_up and state("SHARD_END").caught_up
    assert state(None, closed=True).caught_up  # the lease of a finished parent was cleaned up
    assert not state("99").caught_up and not state("TRIM_HORIZON").caught_up and not state(None).caught_up


def test_a_lost_key_is_explained_by_shard_sequence_and_journal() -> None:
    sent = [_sent("k1", "A", "s0", "5"), _sent("k2", "B", "s0", "9")]
    states = [caught_up.ShardState("s0", 9, "SHARD_END", closed=True, ending_sequence=7)]
    text = caught_up.explain_lost(["k2"], sent, [("s0", "5")], states)
    assert "1 keys lost (s0: 1 records, sequences 9..9)" in text
    assert "k2: s0 9 NOT in the journal, after the shard end" in text
