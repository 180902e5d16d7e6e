"""The counter-cell layout both the processor and the API read (`wikitide.cells`)."""

from wikitide import cells, keys


def test_a_window_range_holds_every_shard_of_its_minutes_and_nothing_else() -> None:
    first, last = cells.window_bounds(100, 160)
    inside = [cells.sort_key(minute, shard) for minute in (100, 130, 160)
              for shard in ("", "shardId-000000000000", "shardId-000000000017")]
    outside = [cells.sort_key(99, "shardId-000000000009"), cells.sort_key(161), cells.sort_key(161, "a")]
    assert all(first <= sk <= last for sk in inside)
    assert not any(first <= sk <= last for sk in outside)


def test_sort_keys_sort_by_minute_as_strings() -> None:
    minutes = [5, 40, 600, 29_000_000, 9_999_999_999]
    assert sorted(cells.sort_key(m, "shardId-1") for m in minutes) == [cells.sort_key(m, "shardId-1") for m in minutes]


def test_an_item_key_reads_back_as_its_minute_and_shard() -> None:
    key = cells.item_key(cells.wiki_scope("enwiki"), 29_000_123, "shardId-000000000003")
    assert key["pk"] == {"S": "w:enwiki"}
    assert cells.split_sort_key(key["sk"]["S"]) == (29_000_123, "shardId-000000000003")


def test_pages_have_no_cells_and_old_page_cells_are_not_counter_scopes() -> None:
    assert all(cells.is_cell_scope(scope) for scope in (cells.TOTAL, cells.REJECTED, cells.wiki_scope("dewiki")))
    assert not cells.is_cell_scope("p:" + keys.page_member("dewiki", "Zürich"))  # an earlier version's page cell
    assert cells.wiki_of(cells.wiki_scope("dewiki")) == "dewiki"


def test_only_counter_attributes_are_counters() -> None:
    item = {
        "pk": {"S": cells.TOTAL}, "sk": {"S": cells.sort_key(7, "s")}, "seq": {"S": "123"},
        "expires_at": {"N": "99999"}, "page_minute": {"N": "7"}, "events": {"N": "4"}, "bytes_added": {"N": "-0"},
        "note": {"S": "not a number"},
    }
    assert cells.counters(item) == {"events": 4, "bytes_added": 0}


def test_cells_expire_after_the_longest_window() -> None:
    assert cells.expires_at(1000) - 1000 * 60 > 24 * 3600
