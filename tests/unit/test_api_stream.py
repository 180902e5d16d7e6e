"""`/v1/stream` over an in-memory feed: filters, ids, resuming after Last-Event-ID, trimmed history, fan-out."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from api import create_app
from api.errors import InvalidParameter
from api.fanout import Fanout, StreamOptions, sse_events
from api.filters import KEEP_ALL, ChangeFilter, parse_change_filter
from tests.unit.fake_feed import FakeFeedLog
from tests.unit.test_api_routes import FakeEdits, FakeStats


def doc(n: int, **fields: Any) -> dict[str, Any]:
    base = {"key": f"enwiki:{n}", "wiki": "enwiki", "type": "edit", "namespace": 0, "editor": "user",
            "byte_delta": 10, "title": f"Page {n}"}
    return {**base, **fields}


class Frames:
    """Reads an SSE text iterator frame by frame (a frame ends with a blank line)."""

    def __init__(self, events: Iterator[str]) -> None:
        self._events = events
        self._buffer = ""

    def next(self) -> dict[str, Any]:
        while "\n\n" not in self._buffer:
            self._buffer += next(self._events)
        frame, self._buffer = self._buffer.split("\n\n", 1)
        fields: dict[str, Any] = {}
        for line in frame.split("\n"):
            name, _, value = line.partition(": ")
            fields[name] = value
        return fields

    def next_change(self) -> tuple[str, dict[str, Any]]:
        while True:
            frame = self.next()
            if "data" in frame and "event" not in frame:
                return frame["id"], json.loads(frame["data"])


FAST = StreamOptions(heartbeat_seconds=0.2, max_seconds=30)


def test_filters_parse_each_parameter_and_match_documents() -> None:
    keep = parse_change_filter({"wiki": "enwiki,dewiki", "type": "edit,new", "namespace": "0,-1",
                                "editor": "anonymous,temporary", "min_bytes": "100"})
    assert keep.matches(doc(1, editor="anonymous", byte_delta=-150))
    assert not keep.matches(doc(1, editor="anonymous", byte_delta=99))
    assert not keep.matches(doc(1, editor="user", byte_delta=500))
    assert not keep.matches(doc(1, editor="anonymous", byte_delta=500, wiki="frwiki"))
    assert not keep.matches(doc(1, editor="anonymous", byte_delta=500, type="log"))
    assert not keep.matches(doc(1, editor="anonymous", byte_delta=500, namespace=14))
    assert not keep.matches(doc(1, editor="anonymous", byte_delta=None))
    humans = parse_change_filter({"editor": "human"})
    assert [humans.matches(doc(1, editor=kind)) for kind in ("user", "temporary", "anonymous", "bot")] == [
        True, True, True, False]
    assert parse_change_filter({}) == KEEP_ALL


@pytest.mark.parametrize(("name", "value"), [
    ("wiki", "en wiki"), ("type", "edits"), ("namespace", "main"), ("namespace", "1" * 12), ("editor", "robot"),
    ("min_bytes", "-1"), ("min_bytes", "1e3"), ("wiki", ",".join(["enwiki"] * 51)), ("namespace", "²"),
])
def test_a_wrong_filter_names_its_parameter(name: str, value: str) -> None:
    with pytest.raises(InvalidParameter, match=name):
        parse_change_filter({name: value})


def test_a_client_gets_the_changes_its_filter_matches_with_their_feed_ids() -> None:
    feed = FakeFeedLog()
    events = sse_events(Fanout(feed, block_ms=50), feed, ChangeFilter(wikis=frozenset({"dewiki"})), None, FAST)
    frames = Frames(events)
    assert frames.next() == {"retry": "3000"}
    expected = []
    for n in range(6):
        entry_id = feed.append(doc(n, wiki="dewiki" if n % 2 else "enwiki"))
        if n % 2:
            expected.append((entry_id, n))
    got = [frames.next_change() for _ in expected]
    assert [(entry_id, change["key"]) for entry_id, change in got] == [(i, f"enwiki:{n}") for i, n in expected]
    events.close()


def test_a_client_resuming_after_its_last_id_misses_nothing_and_repeats_nothing() -> None:
    feed = FakeFeedLog()
    fanout = Fanout(feed, block_ms=50, ring_size=5)
    ids = [feed.append(doc(n)) for n in range(30)]
    # Older than the ring: the client catches up from the feed itself, then follows the ring.
    events = sse_events(fanout, feed, KEEP_ALL, ids[3], FAST)
    frames = Frames(events)
    frames.next()
    got = [frames.next_change()[0] for _ in range(26)]
    later = [feed.append(doc(n)) for n in range(30, 40)]
    got += [frames.next_change()[0] for _ in range(10)]
    assert got == ids[4:] + later
    events.close()


def test_a_position_older_than_the_feed_keeps_is_announced_as_a_gap() -> None:
    feed = FakeFeedLog(maxlen=5)
    ids = [feed.append(doc(n)) for n in range(10)]
    frames = Frames(sse_events(Fanout(feed, block_ms=50), feed, KEEP_ALL, "1733130000000-0", FAST))
    frames.next()
    gap = frames.next()
    assert gap["event"] == "gap"
    assert json.loads(gap["data"])["oldest_kept"] == ids[5]
    assert [frames.next_change()[0] for _ in range(5)] == ids[5:]


def test_a_feed_that_never_reached_its_cap_announces_no_gap() -> None:
    feed = FakeFeedLog(maxlen=50)
    ids = [feed.append(doc(n)) for n in range(10)]
    frames = Frames(sse_events(Fanout(feed, block_ms=50), feed, KEEP_ALL, "0-0", FAST))
    assert frames.next() == {"retry": "3000"}
    assert frames.next()["id"] == ids[0]


def test_quiet_connections_get_heartbeats_that_move_the_last_event_id() -> None:
    feed = FakeFeedLog()
    events = sse_events(Fanout(feed, block_ms=50), feed, ChangeFilter(wikis=frozenset({"dewiki"})), None, FAST)
    frames = Frames(events)
    frames.next()
    skipped = feed.append(doc(1))  # not for this client
    beat = frames.next()
    while beat.get("id") != skipped:
        beat = frames.next()
    assert beat[""] == "heartbeat"
    assert "data" not in beat
    events.close()


def test_many_clients_share_one_reader() -> None:
    feed = FakeFeedLog()
    fanout = Fanout(feed, block_ms=200)
    streams = [sse_events(fanout, feed, KEEP_ALL, None, FAST) for _ in range(50)]
    readers = [Frames(events) for events in streams]
    for frames in readers:
        frames.next()
    reads_before = feed.reads
    ids = [feed.append(doc(n)) for n in range(20)]
    results: list[list[str]] = [[] for _ in readers]

    def consume(i: int) -> None:
        results[i] = [readers[i].next_change()[0] for _ in ids]

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(len(readers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert all(result == ids for result in results)
    # One reader follows the feed for all 50 clients: its reads grow by a few, not by 50 per change.
    assert feed.reads - reads_before < 40
    for events in streams:
        events.close()


def test_the_reader_stops_when_the_last_client_leaves() -> None:
    feed = FakeFeedLog()
    fanout = Fanout(feed, block_ms=20)
    events = sse_events(fanout, feed, KEEP_ALL, None, FAST)
    next(events)
    events.close()
    thread = fanout._thread
    if thread is not None:
        thread.join(5)
        assert not thread.is_alive()


def stream_client(feed: FakeFeedLog) -> Any:
    return create_app(stats=FakeStats(), edits=FakeEdits(), health_checks={}, feed=feed).test_client()


def test_the_route_answers_an_event_stream_and_resumes_after_the_header() -> None:
    feed = FakeFeedLog()
    ids = [feed.append(doc(n, type="new" if n == 2 else "edit")) for n in range(4)]
    response = stream_client(feed).get("/v1/stream?type=new", headers={"Last-Event-ID": ids[0]}, buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-store"
    frames = Frames(iter(chunk.decode() for chunk in response.response))
    assert frames.next_change() == (ids[2], json.loads(feed.entries[2].text))
    response.close()


@pytest.mark.parametrize(("query", "headers", "name"), [
    ("editor=nobody", {}, "editor"), ("", {"Last-Event-ID": "yesterday"}, "last_event_id"),
    ("last_event_id=1-2-3", {}, "last_event_id"), ("min_bytes=x", {}, "min_bytes"),
])
def test_the_route_refuses_bad_parameters_in_json(query: str, headers: dict[str, str], name: str) -> None:
    response = stream_client(FakeFeedLog()).get(f"/v1/stream?{query}", headers=headers)
    assert response.status_code == 400
    assert name in response.get_json()["error"]


def test_the_route_answers_503_when_the_feed_cannot_be_read() -> None:
    feed = FakeFeedLog()
    feed.is_down = True
    response = stream_client(feed).get("/v1/stream")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
