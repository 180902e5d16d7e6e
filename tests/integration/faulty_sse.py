"""An SSE server that misbehaves on purpose, one scripted behaviour per connection, like the real
EventStreams does now and then: error statuses, drops between frames and in the middle of one, and a
resume that silently skips events (the position asked for is no longer retained). A hostile one may also
send a line that never ends (`EndlessLine`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from producer.frames import Frame
from tests.quiet_http import QuietThreadingHTTPServer


@dataclass(frozen=True)
class Status:
    code: int
    retry_after: int | None = None


@dataclass(frozen=True)
class CutAfter:
    """Send `frames` frames, then drop the connection (half-way through the next frame with `mid_frame`).
    `skip`: start that many frames after the one the client asked to resume from."""

    frames: int
    mid_frame: bool = False
    skip: int = 0


SERVE_ALL = CutAfter(frames=10**9)


@dataclass(frozen=True)
class EndlessLine:
    """A frame with an `id:` whose `data:` line never ends: the server writes to it until the client hangs up."""

    id: str
    chunk: bytes = b"A" * 65536


class FaultySSE:
    def __init__(self, frames: list[Frame | EndlessLine], script: list[Status | CutAfter], retry_ms: int = 50) -> None:
        self.frames = frames
        self.endless_bytes = 0  # bytes written into endless lines, over all connections
        self.script = list(script)
        self.retry_ms = retry_ms
        self.connections: list[str | None] = []  # the Last-Event-ID of each connection
        self.paths: list[str] = []  # the request path (with its query) of each connection
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:  # noqa: N802
                server.serve(self)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = QuietThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v2/stream/recentchange"

    def __enter__(self) -> FaultySSE:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        last_id = handler.headers.get("Last-Event-ID")
        self.connections.append(last_id)
        self.paths.append(handler.path)
        behaviour = self.script.pop(0) if self.script else SERVE_ALL
        if isinstance(behaviour, Status):
            handler.send_response(behaviour.code)
            if behaviour.retry_after is not None:
                handler.send_header("Retry-After", str(behaviour.retry_after))
            handler.end_headers()
            return
        start = 0
        if last_id:
            start = next((i + 1 for i, f in enumerate(self.frames) if f.id == last_id), 0)
        start += behaviour.skip
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.end_headers()
        out = handler.wfile
        try:
            out.write(f":ok\n\nretry: {self.retry_ms}\n\n".encode())
            chunk = self.frames[start : start + behaviour.frames]
            for frame in chunk:
                if isinstance(frame, EndlessLine):
                    self._write_endless(out, frame)
                    return
                out.write(frame.encode())
            rest = self.frames[start + len(chunk) :]
            if behaviour.mid_frame and rest and isinstance(rest[0], Frame):
                encoded = rest[0].encode()
                out.write(encoded[: len(encoded) // 2])
            out.flush()
            if behaviour is SERVE_ALL:
                while not self._stop.wait(0.2):
                    out.write(b":\n\n")
                    out.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _write_endless(self, out: Any, frame: EndlessLine) -> None:
        out.write(f"event: message\nid: {frame.id}\ndata: ".encode())
        while not self._stop.is_set():
            out.write(frame.chunk)
            self.endless_bytes += len(frame.chunk)
