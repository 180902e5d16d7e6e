"""The shard-count decision: target utilisation, hysteresis, cool-downs, and UpdateShardCount's limits (at most
double or half per call, ten calls a rolling day, some kept for scale-outs)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wikitide.scaling.shards import DAY_SECONDS, Load, ShardPolicy, decide, needed, utilisation

POLICY = ShardPolicy(min_shards=1, max_shards=64)
NOW = 1_000_000.0
LIVE = Load(bytes_per_second=30 * 1215, records_per_second=30)  # the measured live record size


def records(per_second: float) -> Load:
    return Load(bytes_per_second=per_second * 1215, records_per_second=per_second)


def test_the_busier_of_bytes_and_records_counts() -> None:
    assert utilisation(Load(512 * 1024, 100), 1) == 0.5
    assert utilisation(Load(1024, 900), 2) == 0.45


def test_the_live_rate_needs_one_shard_and_two_are_scaled_in_to_it() -> None:
    assert needed(LIVE, POLICY) == 1
    decision = decide(2, LIVE, [], NOW, POLICY)
    assert decision.target == 1


def test_600_events_per_second_on_one_shard_scale_out_to_two() -> None:
    decision = decide(1, records(600), [], NOW, POLICY)
    assert decision.target == 2  # 600 records of 1,215 bytes a second fill 70% of one shard's MiB/s
    assert decide(2, records(600), [], NOW, POLICY).target is None  # 35% is inside the band


def test_smaller_shards_scale_the_same_decisions_down() -> None:
    """The local ramp (`benchmarks/ramp.py`) runs shards of 3% of Kinesis's: 600 -> 18 events/s, the same choices."""
    small = ShardPolicy(shard_bytes_per_second=0.03 * 1024 * 1024, shard_records_per_second=30)
    assert decide(1, records(18), [], NOW, small).target == 2
    assert decide(1, records(600), [], NOW, POLICY).target == 2
    assert decide(2, records(0.9), [], NOW, small).target == 1
    assert utilisation(records(30), 1, small) == pytest.approx(30 * 1215 / (0.03 * 1024 * 1024))
    with pytest.raises(ValueError):
        ShardPolicy(shard_records_per_second=0)


def test_a_scale_out_is_at_most_double_and_a_scale_in_at_most_half() -> None:
    assert decide(2, records(5000), [], NOW, POLICY).target == 4
    assert decide(16, records(30), [], NOW, POLICY).target == 8


def test_inside_the_band_nothing_changes_in_either_direction() -> None:
    for per_second in (200, 400, 500):
        assert decide(1, records(per_second), [], NOW, POLICY).target is None


def test_cooldowns_hold_a_change_after_the_last() -> None:
    assert decide(1, records(900), [NOW - 60], NOW, POLICY).target is None
    assert decide(1, records(900), [NOW - 301], NOW, POLICY).target == 2
    assert decide(4, records(30), [NOW - 1800], NOW, POLICY).target is None
    assert decide(4, records(30), [NOW - 3601], NOW, POLICY).target == 2


def test_the_daily_calls_are_never_exceeded_and_some_are_kept_for_scale_outs() -> None:
    seven = [NOW - 4000 - i for i in range(7)]
    assert decide(4, records(30), seven, NOW, POLICY).target is None  # 3 left: kept for scale-outs
    assert decide(1, records(900), seven, NOW, POLICY).target == 2
    ten = [NOW - 4000 - i for i in range(10)]
    assert decide(1, records(900), ten, NOW, POLICY).target is None
    a_day_ago = [NOW - DAY_SECONDS - i for i in range(10)]
    assert decide(1, records(900), a_day_ago, NOW, POLICY).target == 2


def test_the_bounds_are_kept() -> None:
    bounded = ShardPolicy(min_shards=2, max_shards=4)
    assert decide(2, LIVE, [], NOW, bounded).target is None
    assert decide(4, records(20_000), [], NOW, bounded).target is None
    assert decide(1, LIVE, [], NOW, bounded).target == 2
    with pytest.raises(ValueError):
        ShardPolicy(target=0.9, scale_out_above=0.8)


@given(shards=st.integers(1, 64), per_second=st.floats(0, 100_000), calls=st.integers(0, 12),
       age=st.floats(0, 2 * DAY_SECONDS))
def test_every_decision_is_a_call_update_shard_count_accepts(shards: int, per_second: float, calls: int,
                                                             age: float) -> None:
    changes = [NOW - age - i for i in range(calls)]
    decision = decide(shards, records(per_second), changes, NOW, POLICY)
    if decision.target is not None:
        assert decision.target != shards
        assert (shards + 1) // 2 <= decision.target <= 2 * shards
        assert POLICY.min_shards <= decision.target <= POLICY.max_shards
        assert sum(1 for t in changes if NOW - t < DAY_SECONDS) < POLICY.max_changes_per_day


def test_a_ramp_up_and_down_moves_the_shards_without_flapping() -> None:
    """30 -> 600 -> 30 events/s over a day, one decision a minute, applied at once."""
    shards, changes, history = 1, [], []
    rates = [30] * 60 + [30 + 570 * i / 120 for i in range(120)] + [600] * 240 + \
        [600 - 570 * i / 120 for i in range(120)] + [30] * 900
    for minute, rate in enumerate(rates):
        now = NOW + 60 * minute
        decision = decide(shards, records(rate), changes, now, POLICY)
        if decision.target is not None:
            shards = decision.target
            changes.append(now)
        history.append(shards)
        assert utilisation(records(rate), shards) <= 1.0  # never throttled
    assert max(history) == 2 and history[-1] == 1
    assert len(changes) == 2
