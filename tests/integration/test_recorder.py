import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from producer.frames import Frame, load_frames
from producer.recorder import RecordingError, record
from producer.replay import ReplayServer
from tests.quiet_http import QuietThreadingHTTPServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "recentchange"
AGENT = "wikitide-tests/0 (recorder test)"


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    return load_frames(DATA / "sse" / "kirajano_recentchange_2021-08-27.sse")


@pytest.fixture
def answering() -> Iterator[Any]:
    """HTTP servers answering every GET with a given status and Content-Type; `.seen` holds the headers."""
    servers: list[QuietThreadingHTTPServer] = []
    seen: list[dict[str, str]] = []

    def start(status: int, content_type: str = "text/plain") -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                seen.append(dict(self.headers))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no")

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        server = QuietThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v2/stream/recentchange"

    start.seen = seen  # type: ignore[attr-defined]
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_records_the_whole_stream_until_the_server_closes(tmp_path: Path, frames: list[Frame]) -> None:
    out = tmp_path / "whole.sse"
    with ReplayServer(lambda: frames, close_at_end=True) as server:
        count = record(server.url, out, seconds=30, user_agent=AGENT)

    assert count == len(frames)
    assert load_frames(out) == frames
    assert out.read_bytes().startswith(b":ok\n\n")


def test_stops_at_the_deadline_keeping_only_whole_frames(tmp_path: Path, frames: list[Frame]) -> None:
    out = tmp_path / "two_seconds.sse"
    with ReplayServer(lambda: frames, speed=1.0) as server:
        began = time.monotonic()
        count = record(server.url, out, seconds=2, user_agent=AGENT)
        took = time.monotonic() - began
    served = server.frames_sent

    # Generous bounds on a shared machine; ignoring the deadline would take the recording's 66 s.
    assert 2.0 <= took < 15.0
    assert 0 < count < len(frames)
    assert load_frames(out) == frames[:count]
    assert count <= served


def test_a_quiet_stream_still_stops_at_the_deadline(tmp_path: Path, frames: list[Frame]) -> None:
    out = tmp_path / "quiet.sse"
    with ReplayServer(lambda: frames[:3], heartbeat_s=60) as server:
        began = time.monotonic()
        count = record(server.url, out, seconds=1, user_agent=AGENT, read_timeout=30)
        took = time.monotonic() - began

    assert took < 15.0  # ignoring the deadline would wait for the 30 s read timeout
    assert count == 3
    assert load_frames(out) == frames[:3]


def test_a_stall_before_the_deadline_is_an_error_and_keeps_what_arrived(
    tmp_path: Path, frames: list[Frame]
) -> None:
    out = tmp_path / "stalled.sse"
    with (
        ReplayServer(lambda: frames[:3], heartbeat_s=60) as server,
        pytest.raises(RecordingError, match="no data for 0.5 s after 3 frames"),
    ):
        record(server.url, out, seconds=20, user_agent=AGENT, read_timeout=0.5)

    assert load_frames(out) == frames[:3]


def test_403_names_the_status_and_the_user_agent_policy(tmp_path: Path, answering: Any) -> None:
    url = answering(403)

    with pytest.raises(RecordingError, match="HTTP 403") as caught:
        record(url, tmp_path / "x.sse", seconds=5, user_agent=AGENT)

    assert "User-Agent" in str(caught.value)
    assert answering.seen[0]["User-Agent"] == AGENT
    assert not (tmp_path / "x.sse").exists()


def test_server_error_names_the_status(tmp_path: Path, answering: Any) -> None:
    with pytest.raises(RecordingError, match="HTTP 503"):
        record(answering(503), tmp_path / "x.sse", seconds=5, user_agent=AGENT)


def test_an_answer_that_is_not_sse_is_refused(tmp_path: Path, answering: Any) -> None:
    with pytest.raises(RecordingError, match="not an SSE stream"):
        record(answering(200, "text/html"), tmp_path / "x.sse", seconds=5, user_agent=AGENT)


def test_an_unreachable_server_is_a_recording_error(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port once the probe is closed.

    with pytest.raises(RecordingError, match="cannot connect"):
        record(
            f"http://127.0.0.1:{port}/", tmp_path / "x.sse", seconds=5, user_agent=AGENT, connect_timeout=2
        )
