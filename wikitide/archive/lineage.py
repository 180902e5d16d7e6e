"""Which shards a reader may read now, so that resharding loses nothing and keeps each page's order. Pure.

A child shard (after a split or a merge) holds a page's later records; it is read only once every parent it
names is finished (read to its end and checkpointed). A parent that the stream no longer lists (trimmed after
its retention) counts as finished: nothing of it is left to read.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shard:
    shard_id: str
    parents: tuple[str, ...] = ()


def shard_from_listing(item: dict[str, object]) -> Shard:
    """A shard from one entry of `ListShards`."""
    parents = tuple(p for p in (item.get("ParentShardId"), item.get("AdjacentParentShardId")) if isinstance(p, str))
    return Shard(str(item["ShardId"]), parents)


def readable(shards: Iterable[Shard], finished: Set[str]) -> list[str]:
    """The shards not finished whose listed parents are all finished, in listing order."""
    listed = list(shards)
    known = {shard.shard_id for shard in listed}
    return [
        shard.shard_id for shard in listed
        if shard.shard_id not in finished
        and all(parent in finished or parent not in known for parent in shard.parents)
    ]
