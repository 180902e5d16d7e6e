"""The producer against a misbehaving SSE server and a failing Kinesis: after each fault, every distinct
event of the source is in Kinesis, in per-page order."""

from __future__ import annotations

import json
import threading
import time

import boto3
import pytest

from producer.frames import Frame, load_frames
from producer.kinesis_writer import KinesisWriter
from producer.service import Producer
from producer.sse_source import ReconnectPolicy, read_events
from tests.conftest import RECENTCHANGE
from tests.integration.faulty_sse import CutAfter, FaultySSE, Status
from tests.integration.test_kinesis_writer import _read_all
from wikitide.errors import ConfigError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

FAST = ReconnectPolicy(base=0.01, max_delay=0.2)


def _source(count: int = 400) -> list[Frame]:
    frames = load_frames(RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson")[:count]
    # Garbage the real stream has been seen to send: a non-JSON payload and a JSON non-object.
    frames.insert(50, Frame(data="<html>upstream error</html>", id="garbage-1"))
    frames.insert(120, Frame(data="[]", id="garbage-2"))
    return frames


def _valid(frames: list[Frame]) -> list[dict]:
    events = []
    for frame in frames:
        try:
            event = json.loads(frame.data)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def assert_complete_and_ordered(frames: list[Frame], stored: list[bytes]) -> None:
    """Every distinct source event is stored; per page, first arrivals follow the source order."""
    expected = _valid(frames)
    got = [json.loads(data) for data in stored]
    assert {e["meta"]["id"] for e in got} == {e["meta"]["id"] for e in expected}
    first_seen: dict[tuple, list[str]] = {}
    seen: set[str] = set()
    for event in got:
        if event["meta"]["id"] in seen:
            continue
        seen.add(event["meta"]["id"])
        first_seen.setdefault((event["wiki"], event["title"]), []).append(event["meta"]["id"])
    for page, ids in first_seen.items():
        source_order = [e["meta"]["id"] for e in expected if (e["wiki"], e["title"]) == page]
        assert ids == source_order, page


def _run(server: FaultySSE, stream: str, expected_reads: int) -> Producer:
    stop = threading.Event()
    events = read_events(server.url, "wikitide-tests", policy=FAST, should_stop=stop.is_set, read_timeout=5)
    producer = Producer(events, KinesisWriter(boto3.client("kinesis"), stream, fast_retries=True), linger=0.05)
    runner = threading.Thread(target=producer.run, args=(stop,))
    runner.start()
    deadline = time.monotonic() + 60
    while producer.stats.read < expected_reads and time.monotonic() < deadline and runner.is_alive():
        time.sleep(0.05)
    time.sleep(0.3)
    stop.set()
    runner.join(timeout=20)
    assert not runner.is_alive()
    return producer


@pytest.mark.parametrize(
    "script",
    [
        pytest.param([CutAfter(100), CutAfter(150)], id="drop-between-frames"),
        pytest.param([CutAfter(70, mid_frame=True), CutAfter(33, mid_frame=True)], id="drop-mid-frame"),
        pytest.param([Status(429, retry_after=1), Status(503)], id="429-then-503-then-200"),
        pytest.param([Status(502), CutAfter(10, mid_frame=True), Status(429)], id="mixed"),
    ],
)
def test_every_event_arrives_in_page_order_through_faults(provisioned, script) -> None:
    frames = _source()
    with FaultySSE(frames, script) as server:
        producer = _run(server, provisioned.stream_name, expected_reads=len(frames))
    assert len(server.connections) > len([s for s in script if isinstance(s, Status)])
    assert producer.stats.rejected == {"not_json": 1, "not_an_object": 1}
    assert_complete_and_ordered(frames, _read_all(boto3.client("kinesis"), provisioned.stream_name))


def test_reconnects_resume_after_the_last_event_seen(provisioned) -> None:
    frames = _source(200)
    with FaultySSE(frames, [CutAfter(80)]) as server:
        _run(server, provisioned.stream_name, expected_reads=len(frames))
    assert server.connections[0] is None
    assert server.connections[1] == frames[79].id


@pytest.mark.parametrize("status", [400, 403])
def test_a_configuration_error_stops_instead_of_retrying(provisioned, status) -> None:
    with FaultySSE(_source(), [Status(status)] * 5) as server:
        events = read_events(server.url, "wikitide-tests", policy=FAST)
        producer = Producer(events, KinesisWriter(boto3.client("kinesis"), provisioned.stream_name), linger=0.05)
        with pytest.raises(ConfigError, match=f"HTTP {status}"):
            producer.run(threading.Event())
    assert len(server.connections) == 1


def test_unicode_line_separators_inside_json_do_not_split_an_event(provisioned) -> None:
    event = {"meta": {"id": "sep", "dt": "2024-01-01T00:00:00Z"}, "type": "edit", "wiki": "enwiki", "title": "Ä",
             "comment": "a\u2028b\u0085c\u2029d \u00e9\u4e2d"}
    data = json.dumps(event, ensure_ascii=False)
    frames = [Frame(data=data, id="1"), *_source(20)]
    with FaultySSE(frames, []) as server:
        producer = _run(server, provisioned.stream_name, expected_reads=len(frames))
    assert producer.stats.rejected == {"not_json": 1, "not_an_object": 1}
    stored = _read_all(boto3.client("kinesis"), provisioned.stream_name)
    assert data.encode() in stored


def test_a_source_that_keeps_failing_gives_up_after_the_bounded_reconnects(provisioned) -> None:
    from wikitide.errors import DependencyUnavailable

    policy = ReconnectPolicy(base=0.01, max_delay=0.05, max_failures=4)
    with FaultySSE(_source(), [Status(503)] * 10) as server:
        events = read_events(server.url, "wikitide-tests", policy=policy)
        producer = Producer(events, KinesisWriter(boto3.client("kinesis"), provisioned.stream_name), linger=0.05)
        with pytest.raises(DependencyUnavailable, match="4 reconnects in a row failed, the last with HTTP 503"):
            producer.run(threading.Event())
    assert len(server.connections) == 4
