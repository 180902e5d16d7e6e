"""The archive's key layout and the reading order of resharded shards."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

from wikitide.archive import layout
from wikitide.archive.lineage import Shard, readable, shard_from_listing
from wikitide.archive.objects import Corrupt, lines_of


def test_a_range_reads_its_hours_and_the_buffer_after_it() -> None:
    start = datetime(2026, 12, 31, 23, 40, tzinfo=UTC)
    end = datetime(2027, 1, 1, 0, 50, tzinfo=UTC)
    assert list(layout.hour_prefixes(start, end)) == [
        "raw/2026/12/31/23/", "raw/2027/01/01/00/", "raw/2027/01/01/01/"]  # 00:50 + 15 min of buffering


def test_the_write_time_is_read_from_firehose_object_names() -> None:
    key = "raw/2026/12/02/03/wt-archive-1-2026-12-02-03-59-58-0b1c2d3e-aaaa-bbbb-cccc-0123456789ab"
    assert layout.written_at(key) == datetime(2026, 12, 2, 3, 59, 58, tzinfo=UTC)
    assert layout.written_at("errors/whatever") is None


def test_children_wait_for_every_parent() -> None:
    shards = [Shard("p1"), Shard("p2"), Shard("merged", ("p1", "p2")), Shard("split-a", ("merged",))]
    assert readable(shards, set()) == ["p1", "p2"]
    assert readable(shards, {"p1"}) == ["p2"]
    assert readable(shards, {"p1", "p2"}) == ["merged"]
    assert readable(shards, {"p1", "p2", "merged"}) == ["split-a"]


def test_a_parent_no_longer_listed_counts_as_finished() -> None:
    listing = [{"ShardId": "child", "ParentShardId": "trimmed", "AdjacentParentShardId": None}]
    assert readable([shard_from_listing(item) for item in listing], set()) == ["child"]


def test_corrupt_and_truncated_objects_are_told_apart_from_good_ones() -> None:
    good = gzip.compress(b'{"a":1}\n{"b":2}\n') + gzip.compress(b'{"c":3}\n')  # two members, as Firehose's pieces
    assert lines_of("k", good) == [b'{"a":1}\n', b'{"b":2}\n', b'{"c":3}\n']
    assert isinstance(lines_of("k", b"not gzip at all"), Corrupt)
    truncated = lines_of("k2", good[:-12])
    assert isinstance(truncated, Corrupt) and truncated.key == "k2"


def test_saved_positions_are_kept_for_the_same_stream_and_dropped_for_a_recreated_one(tmp_path) -> None:
    from wikitide.archive.forwarder import ShardPositions

    path = tmp_path / "positions.json"
    first = ShardPositions(path, "s", "2026-12-02T03:00:00+00:00")
    first.after["shardId-0"] = "42"
    first.finished.add("shardId-1")
    first.save()
    again = ShardPositions(path, "s", "2026-12-02T03:00:00+00:00")
    assert (again.after, again.finished) == ({"shardId-0": "42"}, {"shardId-1"})
    recreated = ShardPositions(path, "s", "2026-12-02T04:00:00+00:00")  # the emulators started afresh
    assert (recreated.after, recreated.finished) == ({}, set())
    path.write_text("{not json")
    assert ShardPositions(path, "s", "2026-12-02T03:00:00+00:00").after == {}
