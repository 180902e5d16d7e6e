"""`wikitide workers`: the rows and the table, from shards, leases and progress."""

from wikitide.fleet_status import LeaseInfo, ShardInfo, build_rows, format_table, summary
from wikitide.shard_progress import ShardProgress

NOW = 1_700_000_100_000
SEQ = "49650000000000000000000000000000000000000000000000000042"

SHARDS = [
    ShardInfo("shardId-000000000000", (), False),
    ShardInfo("shardId-000000000001", (), True),
    ShardInfo("shardId-000000000002", ("shardId-000000000000",), True),
]
LEASES = [
    LeaseInfo("shardId-000000000000", None, "SHARD_END"),
    LeaseInfo("shardId-000000000001", "w1", SEQ),
    LeaseInfo("shardId-000000000002", "w2", "TRIM_HORIZON"),
]
PROGRESS = {
    "shardId-000000000001": ShardProgress("shardId-000000000001", SEQ, NOW - 10_000, NOW - 9_700, 0),
}


def test_lag_is_from_the_last_records_arrival_to_its_processing() -> None:
    rows = build_rows(SHARDS, LEASES, PROGRESS, now_ms=NOW)
    busy = rows[1]
    assert (busy.owner, busy.checkpoint, busy.is_open) == ("w1", SEQ, True)
    assert (busy.lag_ms, busy.behind_ms, busy.last_batch_age_ms) == (300, 0, 9_700)
    assert rows[2].lag_ms is None and rows[2].parents == ("shardId-000000000000",)


def test_a_lease_whose_shard_is_no_longer_listed_still_shows() -> None:
    rows = build_rows(SHARDS[1:], LEASES, {}, now_ms=NOW)
    assert [r.shard_id for r in rows] == [s.shard_id for s in SHARDS]
    assert rows[0].is_open is False and rows[0].checkpoint == "SHARD_END"


def test_a_shard_without_a_lease_is_named_so() -> None:
    rows = build_rows(SHARDS, LEASES[1:], {}, now_ms=NOW)
    assert "(no lease)" in format_table(rows).splitlines()[1]


def test_the_table_shows_each_column_and_the_summary_counts_open_leases() -> None:
    rows = build_rows(SHARDS, LEASES, PROGRESS, now_ms=NOW)
    lines = format_table(rows).splitlines()
    assert lines[0].split() == ["SHARD", "PARENTS", "STATE", "OWNER", "CHECKPOINT", "LAG", "BEHIND", "LAST", "BATCH"]
    assert lines[2].split() == ["000000000001", "-", "open", "w1", "…0000000000042", "0.3s", "0.0s", "9.7s", "ago"]
    assert lines[3].split()[:5] == ["000000000002", "000000000000", "open", "w2", "TRIM_HORIZON"]
    assert summary(rows) == "2 open shards, 1 closed; leases of open shards: w1: 1, w2: 1"
