import itertools
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from producer.frames import Frame, load_frames, parse_sse
from producer.replay import ReplayServer
from producer.synthetic import synthetic_frames

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "recentchange"
START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    return load_frames(DATA / "sse" / "kirajano_recentchange_2021-08-27.sse")


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start ReplayServers for a test and stop every one of them afterwards."""
    servers: list[ReplayServer] = []

    def start(*args: Any, **kwargs: Any) -> ReplayServer:
        server = ReplayServer(*args, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def read_events(url: str, count: int, last_id: str | None = None) -> tuple[list[Frame], int | None]:
    """The first `count` events that carry data, parsed by the SSE library the producer uses, and the
    last `retry:` value seen."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    events: list[Frame] = []
    retry: int | None = None
    with httpx.Client(timeout=10) as client, connect_sse(client, "GET", url, headers=headers) as source:
        for sse in source.iter_sse():
            retry = sse.retry if sse.retry is not None else retry
            if sse.data:
                events.append(Frame(data=sse.data, id=sse.id or None, event=sse.event or None))
            if len(events) == count:
                return events, retry
    raise AssertionError(f"the stream ended after {len(events)} of {count} events")


def as_tuples(items: list[Any]) -> list[tuple[str | None, str | None, str]]:
    return [(item.id, item.event, item.data) for item in items]


def test_every_recorded_frame_arrives_in_order_at_full_speed(serve: Any, frames: list[Frame]) -> None:
    server = serve(lambda: frames, speed=0)

    events, _ = read_events(server.url, len(frames))

    assert as_tuples(events) == as_tuples(frames)
    server.stop()
    assert server.frames_sent == len(frames)


def test_each_connection_replays_from_the_start(serve: Any, frames: list[Frame]) -> None:
    server = serve(lambda: frames[:5])

    first, _ = read_events(server.url, 5)
    second, _ = read_events(server.url, 5)

    assert as_tuples(first) == as_tuples(second) == as_tuples(frames[:5])


def test_resume_continues_after_the_first_frame_with_the_last_event_id(
    serve: Any, frames: list[Frame]
) -> None:
    server = serve(lambda: frames)
    last_id = frames[100].id
    # Recorded ids repeat (1-s positions): resuming after the first occurrence may repeat, never skip.
    first = next(i for i, f in enumerate(frames) if f.id == last_id)
    expected = frames[first + 1 :]

    events, _ = read_events(server.url, len(expected), last_id=last_id)

    assert 0 < first + 1 < len(frames)
    assert as_tuples(events) == as_tuples(expected)


def test_unknown_last_event_id_replays_from_the_beginning_with_a_warning(
    serve: Any, frames: list[Frame], caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(lambda: frames[:3])

    with caplog.at_level(logging.WARNING, logger="producer.replay"):
        events, _ = read_events(server.url, 3, last_id='[{"topic":"elsewhere","partition":0,"offset":1}]')

    assert as_tuples(events) == as_tuples(frames[:3])
    assert any("not found" in r.getMessage() for r in caplog.records)


def test_retry_field_is_sent_before_the_frames(serve: Any, frames: list[Frame]) -> None:
    server = serve(lambda: frames[:2], retry_ms=1234, close_at_end=True)

    body = httpx.get(server.url, timeout=10).content
    _, retry = read_events(server.url, 1)

    assert body.startswith(b":ok\n\nretry: 1234\n\nevent: message\n")
    assert retry == 1234


def test_close_at_end_ends_the_response_after_the_last_frame(serve: Any, frames: list[Frame]) -> None:
    server = serve(lambda: frames[:3], close_at_end=True)

    response = httpx.get(server.url, timeout=10)

    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert list(parse_sse(response.text)) == frames[:3]


def test_without_close_at_end_the_stream_idles_with_heartbeats(serve: Any, frames: list[Frame]) -> None:
    server = serve(lambda: frames[:1], heartbeat_s=0.05)
    received = b""

    with httpx.stream("GET", server.url, timeout=10) as response:
        deadline = time.monotonic() + 5
        for chunk in response.iter_raw():
            received += chunk
            if received.count(b":\n\n") >= 3 or time.monotonic() > deadline:
                break

    assert received.startswith(b":ok\n\n" + frames[0].encode())
    assert received.endswith(b":\n\n:\n\n:\n\n")


def test_any_get_path_is_served_and_other_methods_are_refused(serve: Any, frames: list[Frame]) -> None:
    server = serve(lambda: frames[:1], close_at_end=True)
    root = server.url.removesuffix("/v2/stream/recentchange")

    assert list(parse_sse(httpx.get(root + "/anything", timeout=10).text)) == frames[:1]
    assert httpx.post(server.url, timeout=10).status_code == 501


def test_rate_paces_events_per_second(serve: Any) -> None:
    server = serve(lambda: synthetic_frames(seed=1, start=START), rate=20.0)

    began = time.monotonic()
    events, _ = read_events(server.url, 11)
    elapsed = time.monotonic() - began

    # 10 gaps of 1/20 s.
    assert elapsed >= 0.45  # paced; no upper bound: a busy machine may be slower
    assert len(events) == 11


def test_speed_scales_the_recorded_pace(serve: Any, frames: list[Frame]) -> None:
    # The first 100 frames span 4 s of meta.dt (running maximum); at speed 3 that is 1.3 s.
    server = serve(lambda: frames[:100], speed=3.0)

    began = time.monotonic()
    read_events(server.url, 100)
    elapsed = time.monotonic() - began

    # Paced (at least the scaled 1.3 s), and faster than as recorded (at speed 1 it cannot take under 4 s).
    assert 1.2 <= elapsed < 4.0


def test_synthetic_frames_are_served_and_resumable(serve: Any) -> None:
    server = serve(lambda: synthetic_frames(seed=5, start=START))
    expected = list(itertools.islice(synthetic_frames(seed=5, start=START), 40))

    events, _ = read_events(server.url, 20)
    resumed, _ = read_events(server.url, 20, last_id=events[-1].id)

    assert as_tuples(events + resumed) == as_tuples(expected)
    assert json.loads(resumed[0].id)[0] == {"topic": "wikitide.synthetic", "partition": 0, "offset": 20}


def test_client_going_away_ends_its_handler_quietly(
    serve: Any, frames: list[Frame], capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(lambda: frames, speed=0, heartbeat_s=0.05)
    threads_while_idle = set(threading.enumerate())

    read_events(server.url, 2)
    deadline = time.monotonic() + 5
    # The handler thread must end on its own, on the write error, before stop() is ever called.
    while set(threading.enumerate()) - threads_while_idle and time.monotonic() < deadline:
        time.sleep(0.02)
    handler_threads_left = set(threading.enumerate()) - threads_while_idle
    later, _ = read_events(server.url, 1)
    server.stop()

    assert handler_threads_left == set()
    assert later[0].id == frames[0].id
    assert "Traceback" not in capsys.readouterr().err


def test_stop_cuts_open_streams_and_leaves_no_thread_behind(serve: Any, frames: list[Frame]) -> None:
    before = set(threading.enumerate())
    server = serve(lambda: frames[:2], heartbeat_s=30)
    client = httpx.Client(timeout=10)
    responses = [client.send(client.build_request("GET", server.url), stream=True) for _ in range(3)]
    chunks = [response.iter_raw() for response in responses]
    received = [next(chunk) for chunk in chunks]  # every handler is streaming
    time.sleep(0.1)

    began = time.monotonic()
    server.stop()
    stop_took = time.monotonic() - began
    left = set(threading.enumerate()) - before
    tails = [first + b"".join(rest) for first, rest in zip(received, chunks, strict=True)]
    for response in responses:
        response.close()
    client.close()

    assert stop_took < 10.0  # open streams are cut, not waited for (heartbeats come every 15 s)
    assert left == set()
    assert all(tail.endswith(frames[1].encode()) for tail in tails)


def _dt(frame: Frame) -> datetime:
    return datetime.fromisoformat(json.loads(frame.data)["meta"]["dt"].replace("Z", "+00:00"))


def test_since_starts_at_the_first_frame_of_that_time_and_an_older_one_than_held_at_the_newest(
    serve: Any, frames: list[Frame]
) -> None:
    """As EventStreams: `since=` (ISO or epoch milliseconds) inside the held history starts there; older than it,
    from the newest event."""
    first_late = next(i for i, frame in enumerate(frames) if _dt(frame) >= datetime(2021, 8, 27, 13, 21, tzinfo=UTC))
    server = serve(lambda: frames, held_from=_dt(frames[0]))
    for since in ("2021-08-27T13:21:00Z", str(int(datetime(2021, 8, 27, 13, 21, tzinfo=UTC).timestamp() * 1000))):
        got, _ = read_events(f"{server.url}?since={since}", 3)
        assert got == frames[first_late:first_late + 3], since
    newest, _ = read_events(f"{server.url}?since=2021-08-27T12:00:00Z", 1)
    assert newest == frames[-1:]
    assert server.since_asked == ["2021-08-27T13:21:00Z", since, "2021-08-27T12:00:00Z"]
