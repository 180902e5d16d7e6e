"""How many shards the stream should have: a pure decision over the measured write load and the history of changes.

A shard takes 1 MiB/s or 1,000 records/s of writes, whichever comes first. The decision keeps the busier of the two
near `target` of a shard's limit, with hysteresis: it scales out only above `scale_out_above` and in only below
`scale_in_below`, so a load that sits at the boundary does not flap. It respects what `UpdateShardCount` allows:
at most double or half the open shards per call, and `max_changes_per_day` calls in any rolling 24 hours, of which
`reserved_for_scale_out` are never spent on scaling in (a day of small scale-ins must not leave a burst with no
call left). After a change it waits `cooldown_out` before another scale-out (the new shards' load shows in the
metrics a few minutes later) and `cooldown_in` before a scale-in (traffic that fell may come back).

The load it is given should be a peak, not an average (the busiest minute of the last window): a shard is
throttled by its busiest second, not by the mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

SHARD_BYTES_PER_SECOND = 1024 * 1024
SHARD_RECORDS_PER_SECOND = 1000
DAY_SECONDS = 24 * 3600


@dataclass(frozen=True)
class ShardPolicy:
    # 40% leaves a shard room for a burst of 2.5 times the rate before it throttles; the band around it keeps the
    # live rate's small swings from calling UpdateShardCount.
    target: float = 0.4
    scale_out_above: float = 0.6
    scale_in_below: float = 0.2
    min_shards: int = 1
    max_shards: int = 64
    cooldown_out: float = 300.0
    cooldown_in: float = 3600.0
    max_changes_per_day: int = 10  # UpdateShardCount's limit per stream and rolling 24 hours
    reserved_for_scale_out: int = 3
    # What one shard takes (Kinesis's limits); `benchmarks/ramp.py` runs the local stack with smaller shards.
    shard_bytes_per_second: float = SHARD_BYTES_PER_SECOND
    shard_records_per_second: float = SHARD_RECORDS_PER_SECOND

    def __post_init__(self) -> None:
        if not 0 < self.scale_in_below < self.target < self.scale_out_above <= 1:
            raise ValueError("need 0 < scale_in_below < target < scale_out_above <= 1")
        if not 1 <= self.min_shards <= self.max_shards:
            raise ValueError("need 1 <= min_shards <= max_shards")
        if self.shard_bytes_per_second <= 0 or self.shard_records_per_second <= 0:
            raise ValueError("a shard takes some bytes and some records per second")


@dataclass(frozen=True)
class Load:
    """Peak writes per second over the last window."""

    bytes_per_second: float
    records_per_second: float


@dataclass(frozen=True)
class Decision:
    target: int | None  # the shard count to ask for; None: leave it
    reason: str
    utilisation: float


def utilisation(load: Load, shards: int, policy: ShardPolicy | None = None) -> float:
    """The busier of bytes and records, as a fraction of what `shards` shards take."""
    policy = policy or ShardPolicy()
    return max(load.bytes_per_second / (shards * policy.shard_bytes_per_second),
               load.records_per_second / (shards * policy.shard_records_per_second))


def needed(load: Load, policy: ShardPolicy) -> int:
    """Shards that put the load at `target`, within the policy's bounds."""
    count = max(math.ceil(load.bytes_per_second / (policy.shard_bytes_per_second * policy.target)),
                math.ceil(load.records_per_second / (policy.shard_records_per_second * policy.target)), 1)
    return min(policy.max_shards, max(policy.min_shards, count))


def decide(shards: int, load: Load, changes: Sequence[float], now: float, policy: ShardPolicy) -> Decision:
    """The change to make now, if any. `changes` are the times (seconds) of this stream's earlier shard-count
    changes; `shards` is its open shard count."""
    used = utilisation(load, shards, policy)
    recent = [t for t in changes if now - t < DAY_SECONDS]
    since_last = now - max(changes) if changes else math.inf
    left = policy.max_changes_per_day - len(recent)
    if shards < policy.min_shards or shards > policy.max_shards:
        wanted = min(policy.max_shards, max(policy.min_shards, shards))
    elif used > policy.scale_out_above or used < policy.scale_in_below:
        wanted = needed(load, policy)
    else:
        return Decision(None, f"utilisation {used:.0%} is within {policy.scale_in_below:.0%}-"
                              f"{policy.scale_out_above:.0%}", used)
    if wanted > shards:
        target = min(wanted, 2 * shards)
        if since_last < policy.cooldown_out:
            return Decision(None, f"scale-out to {target} waits: last change {since_last:.0f} s ago", used)
        if left < 1:
            return Decision(None, f"scale-out to {target} impossible: {len(recent)} changes in 24 h", used)
        return Decision(target, f"utilisation {used:.0%} above {policy.scale_out_above:.0%}", used)
    if wanted < shards:
        target = max(wanted, math.ceil(shards / 2))
        if since_last < policy.cooldown_in:
            return Decision(None, f"scale-in to {target} waits: last change {since_last:.0f} s ago", used)
        if left <= policy.reserved_for_scale_out:
            return Decision(None, f"scale-in to {target} held: {left} changes left today are kept for scale-outs",
                            used)
        return Decision(target, f"utilisation {used:.0%} below {policy.scale_in_below:.0%}", used)
    return Decision(None, f"{shards} shards are what the load needs", used)
