import json

from producer.batcher import Entry
from producer.progress import Checkpoint, Gap, Mark, PartitionTracker, marks_of
from tests.conftest import RECENTCHANGE

TOPIC = "codfw.mediawiki.recentchange"


def _mark(offset: int, topic: str = TOPIC) -> Mark:
    return Mark(topic, 0, offset, f"2021-08-27T13:{offset // 60 % 60:02d}:{offset % 60:02d}Z")


def test_an_event_is_placed_by_its_meta_coordinates_before_its_sse_id() -> None:
    raw = {"meta": {"topic": TOPIC, "partition": 0, "offset": 441362975, "dt": "2021-08-27T13:20:17Z"}}
    sse_id = '[{"topic":"eqiad.mediawiki.recentchange","partition":0,"offset":-1},' \
             f'{{"topic":"{TOPIC}","partition":0,"timestamp":1630070417001}}]'
    assert marks_of(raw, sse_id) == (Mark(TOPIC, 0, 441362975, "2021-08-27T13:20:17Z"),)
    # No meta coordinates: only the offsets of the id list count; -1 and timestamps place nothing.
    assert marks_of({"meta": {}}, sse_id) == ()
    assert marks_of(None, '[{"topic":"replay","partition":0,"offset":7}]') == (Mark("replay", 0, 7),)
    assert marks_of(None, "garbage-1") == ()
    assert marks_of({"meta": {"topic": TOPIC, "partition": 0, "offset": True}}, None) == ()


def test_the_recorded_capture_is_contiguous_per_partition_so_it_shows_no_gap() -> None:
    tracker = PartitionTracker()
    path = RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson"
    gaps = [g for line in path.read_text().splitlines() for g in tracker.observe(marks_of(json.loads(line), None))]
    assert gaps == []
    assert tracker.positions[(TOPIC, 0)].offset == 441364924


def test_a_jump_after_a_reconnect_is_a_gap_with_its_time_range_and_size() -> None:
    tracker = PartitionTracker()
    for offset in range(100, 110):
        assert tracker.observe((_mark(offset),), connection=0) == ()
    (gap,) = tracker.observe((_mark(125),), connection=1)
    assert gap == Gap(last=_mark(109), next=_mark(125), after="reconnect")
    assert gap.missed == 15
    assert "offsets 110..124" in gap.describe() and "2021-08-27T13:01:49Z and 2021-08-27T13:02:05Z" in gap.describe()


def test_repeats_after_a_timestamp_resume_are_not_gaps_and_do_not_move_the_position_back() -> None:
    tracker = PartitionTracker()
    for offset in range(10):
        tracker.observe((_mark(offset),), connection=0)
    assert [tracker.observe((_mark(o),), connection=1) for o in (6, 7, 8, 9, 10)] == [()] * 5
    assert tracker.observe((_mark(12),), connection=1)[0].after == "stream"


def test_partitions_are_tracked_apart_and_a_new_partition_is_no_gap() -> None:
    tracker = PartitionTracker({(TOPIC, 0): _mark(50)})
    assert tracker.observe((_mark(7, topic="eqiad.mediawiki.recentchange"),)) == ()
    (gap,) = tracker.observe((_mark(53),))
    assert gap.after == "resume" and gap.missed == 2


def test_the_checkpoint_counts_a_gap_once_its_entry_is_written() -> None:
    gap = Gap(last=_mark(9), next=_mark(20), after="reconnect")
    written = [Entry(b"x", "p", "id-9", marks=(_mark(9),)), Entry(b"x", "p", "id-20", marks=(_mark(20),), gaps=(gap,))]
    checkpoint = Checkpoint(gaps=1, missed=4).advanced(written)
    assert checkpoint.last_event_id == "id-20"
    assert checkpoint.partitions == {(TOPIC, 0): _mark(20)}
    assert (checkpoint.gaps, checkpoint.missed, checkpoint.last_gap) == (2, 14, gap)
    assert Checkpoint.partitions_from_json(checkpoint.partitions_json()) == checkpoint.partitions
    assert Gap.from_json(gap.to_json()) == gap
