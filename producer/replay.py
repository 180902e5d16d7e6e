"""A local SSE server that replays frames, so the real SSE client code runs even without the live stream.

It behaves like EventStreams where a client can tell: `text/event-stream` on any GET path, `:ok` first,
`Last-Event-ID` resumes, `?since=` (an ISO time or epoch milliseconds, read only without `Last-Event-ID`) starts at
the first frame of that event time or later, and the connection stays open (idle, with heartbeat comments) after
the last frame unless `close_at_end` is set. With `held_from` (the event time of the oldest event it still holds,
as EventStreams holds only its retention), a `since` older than that starts from the newest frame instead, as
EventStreams silently does (`../shared/data/recentchange/README.md`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from producer.frames import Frame, event_time

logger = logging.getLogger(__name__)

STREAM_PATH = "/v2/stream/recentchange"


class Pacer:
    """How long to wait before each frame, from the recording's own clock or from a fixed rate.

    `speed` scales the gaps between `meta.dt` values (1.0 = as recorded, 10 = ten times faster, 0 = no
    waiting). Gaps are measured from the latest time seen so far, because recorded events arrive out of
    `meta.dt` order and a step backwards must not become a negative or doubled wait; a long silence in
    the recording is cut to `max_gap_s`. A `rate` (events per second) overrides `speed`.
    """

    def __init__(self, speed: float = 0.0, rate: float | None = None, max_gap_s: float = 5.0) -> None:
        if speed < 0:
            raise ValueError(f"speed must be >= 0, got {speed}")
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self._speed = speed
        self._rate = rate
        self._max_gap_s = max_gap_s
        self._latest: float | None = None
        self._is_first = True

    def delay(self, frame: Frame) -> float:
        is_first, self._is_first = self._is_first, False
        if self._rate is not None:
            return 0.0 if is_first else 1.0 / self._rate
        if self._speed == 0:
            return 0.0
        moment = event_time(frame)
        if moment is None:
            return 0.0
        if self._latest is None:
            self._latest = moment
            return 0.0
        gap = max(0.0, moment - self._latest)
        self._latest = max(self._latest, moment)
        return min(gap, self._max_gap_s) / self._speed


class ReplayServer:
    """Serves `frames()` afresh to every GET, on 127.0.0.1.

    `frames` is a factory so each connection (and each `loop` pass) iterates from the start; it may be
    infinite. On `Last-Event-ID` the stream continues after the FIRST frame carrying that id: recorded
    ids repeat (EventStreams positions have 1-s granularity), and the first match may repeat events but
    never skips one. An unknown id restarts from the beginning with a warning, as a stale `since` does
    on the real service.
    """

    # How far to look for a Last-Event-ID in an infinite source before giving up.
    RESUME_SCAN_LIMIT = 1_000_000

    def __init__(
        self,
        frames: Callable[[], Iterable[Frame]],
        *,
        port: int = 0,
        speed: float = 0.0,
        rate: float | None = None,
        retry_ms: int | None = None,
        loop: bool = False,
        close_at_end: bool = False,
        heartbeat_s: float = 15.0,
        max_gap_s: float = 5.0,
        held_from: datetime | None = None,
    ) -> None:
        """`held_from`: only for a finite `frames`; see the module docstring."""
        Pacer(speed, rate, max_gap_s)  # validates the arguments now rather than in a handler thread
        self._frames = frames
        self._port = port
        self._speed = speed
        self._rate = rate
        self._max_gap_s = max_gap_s
        self._retry_ms = retry_ms
        self._loop = loop
        self._close_at_end = close_at_end
        self._heartbeat_s = heartbeat_s
        self._held_from = held_from.timestamp() if held_from else None
        self.since_asked: list[str] = []  # the `since` of each connection that sent one, as sent
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._frames_sent = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("ReplayServer is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}{STREAM_PATH}"

    @property
    def frames_sent(self) -> int:
        """Frames written to sockets so far, over all connections (written, not necessarily read)."""
        with self._lock:
            return self._frames_sent

    def start(self) -> ReplayServer:
        if self._httpd is not None:
            raise RuntimeError("ReplayServer is already started")
        self._stopping.clear()
        self._httpd = _HTTPServer(("127.0.0.1", self._port), _Handler, replay=self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="replay-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, cut every open stream, and wait for all handler threads to finish."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        with self._lock:
            open_connections = list(self._connections)
        for sock in open_connections:
            _shutdown_quietly(sock)
        self._httpd.server_close()  # joins the handler threads (daemon_threads is off)
        assert self._thread is not None
        self._thread.join()
        self._httpd, self._thread = None, None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.add(sock)
        if self._stopping.is_set():  # accepted while stop() was running: it may have missed this one
            _shutdown_quietly(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.discard(sock)

    def _stream(self, out: io.BufferedIOBase, last_event_id: str | None, since: str | None = None) -> None:
        out.write(b":ok\n\n")
        if self._retry_ms is not None:
            out.write(f"retry: {self._retry_ms}\n\n".encode())
        if since is not None and not last_event_id:
            with self._lock:
                self.since_asked.append(since)
            frames = self._frames_since(since)
        else:
            frames = self._frames_after(last_event_id)
        is_fresh_pass = not last_event_id and since is None
        while True:
            sent = self._send_paced(out, frames)
            if sent is None:
                return
            # A source that yields nothing on a full pass would make `loop` spin.
            if not self._loop or (sent == 0 and is_fresh_pass):
                break
            frames, is_fresh_pass = iter(self._frames()), True
        if self._close_at_end:
            return
        while not self._stopping.wait(self._heartbeat_s):
            out.write(b":\n\n")

    def _send_paced(self, out: io.BufferedIOBase, frames: Iterator[Frame]) -> int | None:
        """Frames sent in one pass, or None when the server is stopping."""
        pacer = Pacer(self._speed, self._rate, self._max_gap_s)
        # Waits are measured against a schedule, not slept one by one, so write time does not add up.
        due = time.monotonic()
        sent = 0
        for frame in frames:
            due += pacer.delay(frame)
            if self._stopping.wait(max(0.0, due - time.monotonic())):
                return None
            out.write(frame.encode())
            sent += 1
            with self._lock:
                self._frames_sent += 1
        return sent

    def _frames_after(self, last_event_id: str | None) -> Iterator[Frame]:
        frames = iter(self._frames())
        if not last_event_id:
            return frames
        for scanned, frame in enumerate(frames):
            if frame.id == last_event_id:
                return frames
            if scanned >= self.RESUME_SCAN_LIMIT:
                break
        logger.warning("Last-Event-ID %.80s not found; replaying from the beginning", last_event_id)
        return iter(self._frames())


    def _frames_since(self, since: str) -> Iterator[Frame]:
        """From the first frame whose event time is at or after `since`; from the newest frame when `since` is
        older than `held_from`. A frame without a readable time is served with those around it."""
        moment = _since_seconds(since)
        if moment is None:
            logger.warning("since=%.80s is not a time; replaying from the beginning", since)
            return iter(self._frames())
        if self._held_from is not None and moment < self._held_from:
            frames = list(self._frames())
            return iter(frames[-1:])
        frames = iter(self._frames())
        for scanned, frame in enumerate(frames):
            at = event_time(frame)
            if at is not None and at >= moment:
                return _prepend(frame, frames)
            if scanned >= self.RESUME_SCAN_LIMIT:
                break
        return iter(())


def _prepend(first: Frame, rest: Iterator[Frame]) -> Iterator[Frame]:
    yield first
    yield from rest


def _since_seconds(value: str) -> float | None:
    """EventStreams' `since`: epoch milliseconds or an ISO 8601 time (UTC when it names no zone)."""
    if value.isdigit():
        return int(value) / 1000
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


class _HTTPServer(ThreadingHTTPServer):
    # Non-daemon handler threads are remembered, so server_close() can join them.
    daemon_threads = False

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *, replay: ReplayServer
    ) -> None:
        self.replay = replay
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: the body ends when the socket closes, with no chunked encoding, as simple SSE clients
    # that read the raw socket expect.
    protocol_version = "HTTP/1.0"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.replay._track(self.connection)

    def finish(self) -> None:
        self.server.replay._untrack(self.connection)
        super().finish()

    def do_GET(self) -> None:  # noqa: N802 (the name http.server dispatches to)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            since = parse_qs(urlsplit(self.path).query).get("since")
            self.server.replay._stream(self.wfile, self.headers.get("Last-Event-ID"), since[0] if since else None)
        except ConnectionError:
            logger.debug("client %s went away", self.client_address)
        except OSError:
            # stop() shuts sockets down under a writing handler; anything else is a real error.
            if not self.server.replay._stopping.is_set():
                raise

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (signature of the base class)
        logger.debug("%s %s", self.address_string(), format % args)


def _shutdown_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the client may have closed it already
        sock.shutdown(socket.SHUT_RDWR)
