"""A paused producer closes its SSE connection and resumes after the last event it read: nothing lost or repeated."""

from __future__ import annotations

import threading
import time

import pytest

from producer.frames import load_frames
from producer.sse_source import ReconnectPolicy, read_events
from tests.conftest import RECENTCHANGE
from tests.integration.faulty_sse import FaultySSE

pytestmark = pytest.mark.integration

FAST = ReconnectPolicy(base=0.01, max_delay=0.2)


def test_a_pause_closes_the_connection_and_the_resume_continues_after_the_last_event() -> None:
    frames = load_frames(RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson")[:1500]
    paused, stop = threading.Event(), threading.Event()
    got: list[str | None] = []
    with FaultySSE(frames, []) as server:
        events = read_events(server.url, "wikitide-tests", policy=FAST, should_stop=stop.is_set,
                             should_pause=paused.is_set, pause_poll=0.05, read_timeout=5)

        def consume() -> None:
            for event in events:
                got.append(event.id)
                if len(got) == 100:
                    paused.set()
                if len(got) == len(frames):
                    return

        reader = threading.Thread(target=consume)
        reader.start()
        deadline = time.monotonic() + 30
        while len(got) < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        # Paused: the count stops growing within the chunk being read, on one connection.
        settled = -1
        while settled != len(got) and time.monotonic() < deadline:
            settled = len(got)
            time.sleep(0.3)
        assert 100 <= settled < len(frames)
        assert server.connections == [None]
        paused.clear()
        reader.join(30)
        stop.set()
    assert got == [frame.id for frame in frames]
    assert server.connections == [None, got[settled - 1]]
