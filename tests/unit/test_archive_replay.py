"""`wikitide archive replay` with a hand-written archive and writer: resuming, the rate, and what it leaves out."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest

from producer.batcher import Entry
from wikitide.archive.objects import Corrupt
from wikitide.archive.replay import READ_AHEAD_CALLS, ReplayPosition, replay
from wikitide.envelope import wrap

START = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
END = START + timedelta(hours=1)


def _key(at: datetime, n: int) -> str:
    return f"raw/{at:%Y/%m/%d/%H}/wt-archive-1-{at:%Y-%m-%d-%H-%M-%S}-{n:036d}"


def _object(first: int, count: int, received: datetime, pages: int | None = None) -> bytes:
    """Records `first..first+count-1`, each on a page of its own, or on `pages` pages in turn."""
    ms = int(received.timestamp() * 1000)
    lines = [wrap(json.dumps({"wiki": "enwiki", "title": f"P{n if pages is None else n % pages}", "n": n}).encode(),
                  f"id-{n}", ms)
             for n in range(first, first + count)]
    return gzip.compress(b"".join(lines))


def _pages(numbers: list[int], pages: int) -> dict[int, list[int]]:
    by_page: dict[int, list[int]] = {}
    for n in numbers:
        by_page.setdefault(n % pages, []).append(n)
    return by_page


class FakeArchive:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def keys(self, start: datetime, end: datetime) -> list[str]:
        return sorted(self.objects)

    def read(self, key: str) -> bytes:
        return self.objects[key]


class FakeWriter:
    """Records what is put, call by call; raises KeyboardInterrupt (a Ctrl-C) before the call numbered
    `interrupt_at`."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.put_numbers: list[int] = []
        self.call_pages: list[list[str]] = []
        self.calls = 0
        self.interrupt_at = interrupt_at

    def put(self, entries: list[Entry]) -> None:
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        self.put_numbers += [json.loads(e.data)["event"]["n"] for e in entries]
        self.call_pages.append([e.partition_key for e in entries])


def _archive() -> FakeArchive:
    archive = FakeArchive()
    for index in range(5):
        written = START + timedelta(minutes=10 * index + 1)
        archive.objects[_key(written, index)] = _object(100 * index, 100, written - timedelta(seconds=30))
    archive.objects[_key(START + timedelta(minutes=51), 99)] = b"not gzip"
    return archive


def _run(archive: FakeArchive, writer: FakeWriter, position: ReplayPosition, corrupt: list[Corrupt]) -> object:
    # --rate 100: calls of 100 records (the pauses it would make are skipped)
    return replay(archive, writer, position, START, END, rate=100, on_corrupt=corrupt.append,  # type: ignore[arg-type]
                  on_progress=lambda n, k: None, sleep=lambda seconds: None)


def test_an_interrupted_replay_resumes_after_its_last_call_with_no_gap_and_no_repeat(tmp_path) -> None:
    archive, corrupt = _archive(), []
    position = ReplayPosition(tmp_path, "bucket", START, END, "stream")
    first = FakeWriter(interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        _run(archive, first, position, corrupt)
    assert first.put_numbers == list(range(100))  # the second call was interrupted before it was made
    second = FakeWriter()
    result = _run(archive, second, position, corrupt)
    assert sorted(first.put_numbers + second.put_numbers) == list(range(500))  # no gap, no repeat
    assert result.resumed_after is not None
    assert [c.key for c in corrupt] == [_key(START + timedelta(minutes=51), 99)]


def test_objects_written_after_the_replay_began_are_not_replayed_on_resume(tmp_path) -> None:
    archive, corrupt = _archive(), []
    position = ReplayPosition(tmp_path, "bucket", START, END, "stream")
    first = FakeWriter(interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        _run(archive, first, position, corrupt)
    # The archive receives the replayed records again: same receive time, a later object.
    archive.objects[_key(datetime.now(UTC) + timedelta(seconds=5), 7)] = _object(0, 100, START)
    second = FakeWriter()
    _run(archive, second, position, corrupt)
    assert sorted(first.put_numbers + second.put_numbers) == list(range(500))


def test_records_received_outside_the_range_are_left_out(tmp_path) -> None:
    archive = FakeArchive()
    archive.objects[_key(START, 1)] = _object(0, 10, START - timedelta(seconds=1))
    archive.objects[_key(START + timedelta(minutes=1), 2)] = _object(10, 10, START + timedelta(seconds=1))
    writer = FakeWriter()
    _run(archive, writer, ReplayPosition(tmp_path, "bucket", START, END, "stream"), [])
    assert writer.put_numbers == list(range(10, 20))


def test_a_hot_page_keeps_its_order_while_other_pages_fill_the_calls(tmp_path) -> None:
    archive = FakeArchive()
    written = START + timedelta(minutes=1)
    # 400 records on 40 pages in turn, then 60 more on page 0 alone: the hot page's tail.
    archive.objects[_key(written, 1)] = _object(0, 400, START, pages=40)
    archive.objects[_key(written, 2)] = gzip.compress(b"".join(
        wrap(json.dumps({"wiki": "enwiki", "title": "P0", "n": n}).encode(), f"id-{n}", int(START.timestamp() * 1000))
        for n in range(400, 460)))
    writer = FakeWriter()
    result = _run(archive, writer, ReplayPosition(tmp_path, "bucket", START, END, "stream"), [])
    assert sorted(writer.put_numbers) == list(range(460))
    assert all(len(pages) == len(set(pages)) for pages in writer.call_pages)  # at most one entry of a page a call
    hot_page = [n for n in writer.put_numbers if n % 40 == 0 or n >= 400]
    assert hot_page == sorted(hot_page)  # each page in archive order
    assert _pages([n for n in writer.put_numbers if n < 400], 40) == _pages(list(range(400)), 40)
    # 40 calls at least (page 0 holds 10 + 60 records, one a call): the 390 others ride along in the first ones.
    assert result.calls == 70  # type: ignore[attr-defined]


def test_a_resumed_replay_of_hot_pages_leaves_no_gap_and_repeats_only_what_was_held(tmp_path) -> None:
    archive = FakeArchive()
    # 50 changes of one page, then 400 pages changed once: the calls write the one page's changes one at a time
    # while the others fill them, so the position (behind the hot page's oldest unwritten change) lags.
    archive.objects[_key(START + timedelta(minutes=1), 1)] = _object(0, 50, START, pages=1)
    archive.objects[_key(START + timedelta(minutes=2), 2)] = _object(50, 400, START)
    position = ReplayPosition(tmp_path, "bucket", START, END, "stream")
    first = FakeWriter(interrupt_at=5)
    with pytest.raises(KeyboardInterrupt):
        _run(archive, first, position, [])
    second = FakeWriter()
    _run(archive, second, position, [])
    both = first.put_numbers + second.put_numbers
    assert sorted(set(both)) == list(range(450))  # no gap
    repeats = len(both) - 450
    # Sent again: what was written ahead of the position, at most READ_AHEAD_CALLS calls of --rate 100 records.
    assert 0 < repeats <= READ_AHEAD_CALLS * 100
    # The hot page resumes right after its last change written: the position never passed an unwritten record.
    written_before = [n for n in first.put_numbers if n < 50]
    assert [n for n in second.put_numbers if n < 50] == list(range(written_before[-1] + 1, 50))
