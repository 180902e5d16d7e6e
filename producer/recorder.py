"""Record an SSE stream to a file, line for line, so `load_frames` and the replay server can serve it back.

Only whole frames are written: a frame cut off by the deadline or by the server closing mid-frame is
dropped, as an SSE client would drop it. Comments (`:ok`, heartbeats) are kept verbatim; readers skip them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import httpx

from wikitide.errors import WikitideError


class RecordingError(WikitideError):
    """The stream could not be recorded: an HTTP error, a non-SSE answer, or a stall."""


def record(
    url: str,
    out: Path,
    seconds: float,
    user_agent: str,
    *,
    client: httpx.Client | None = None,
    connect_timeout: float = 10.0,
    read_timeout: float = 30.0,
) -> int:
    """Write `seconds` of the stream at `url` to `out` and return how many frames (events with data) it holds.

    Stops at the deadline or when the server closes the stream, whichever is first. A stream silent for
    `read_timeout` before the deadline raises `RecordingError`; `out` then still holds the whole frames
    received before the stall.
    """
    requester = client or httpx.Client()
    headers = {"User-Agent": user_agent, "Accept": "text/event-stream", "Cache-Control": "no-cache"}
    timeout = httpx.Timeout(connect_timeout, read=read_timeout)
    try:
        with requester.stream("GET", url, headers=headers, timeout=timeout) as response:
            _check(response, url)
            with out.open("wb") as sink:
                return _copy_frames(response, sink, seconds, read_timeout)
    except httpx.TransportError as exc:  # reads raise RecordingError (`_copy_frames`): this is the connect
        raise RecordingError(f"cannot connect to {url}: {exc}") from exc
    finally:
        if client is None:
            requester.close()


def _check(response: httpx.Response, url: str) -> None:
    status = response.status_code
    if status >= 400:
        hint = ""
        if status == 403:
            hint = " (Wikimedia refuses clients without a descriptive User-Agent naming a contact)"
        elif status == 429:
            hint = " (too many concurrent connections from this address)"
        raise RecordingError(f"{url} answered HTTP {status} {response.reason_phrase}{hint}")
    content_type = response.headers.get("Content-Type", "")
    if not content_type.startswith("text/event-stream"):
        raise RecordingError(f"{url} is not an SSE stream (Content-Type {content_type!r})")


def _copy_frames(response: httpx.Response, sink: BinaryIO, seconds: float, read_timeout: float) -> int:
    frames = 0
    pending = b""  # bytes not yet ending in a line break
    frame_lines: list[bytes] = []
    has_data = False
    with _deadline(response, seconds) as expired:
        # iter_bytes yields what has arrived (decoded) instead of waiting for a full buffer of a quiet stream.
        chunks = response.iter_bytes()
        while not expired.is_set():
            try:
                chunk = next(chunks, b"")
            except (httpx.HTTPError, OSError) as exc:
                if expired.is_set():
                    break  # the deadline cut the connection under the read
                if isinstance(exc, httpx.ReadTimeout):
                    raise RecordingError(f"no data for {read_timeout:g} s after {frames} frames") from exc
                raise RecordingError(f"stream broke after {frames} frames: {exc}") from exc
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                frame_lines.append(line + b"\n")
                if line.rstrip(b"\r"):
                    has_data = has_data or line.split(b":", 1)[0] == b"data"
                    continue
                sink.write(b"".join(frame_lines))
                sink.flush()
                if has_data:
                    frames += 1
                frame_lines, has_data = [], False
    return frames


@contextlib.contextmanager
def _deadline(response: httpx.Response, seconds: float) -> Iterator[threading.Event]:
    """An event set after `seconds`, when the connection is also shut down so a blocked read returns.

    The read timeout cannot do this: it is fixed per request, and a timeout ends the response, so a quiet
    stream would overrun the deadline by up to the whole read timeout.
    """
    expired = threading.Event()
    # A duplicate of the descriptor: shutting it down ends the shared connection, closing it does not.
    stream_socket = response.extensions["network_stream"].get_extra_info("socket")
    sock = socket.socket(fileno=os.dup(stream_socket.fileno()))

    def expire() -> None:
        expired.set()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(seconds, expire)
    timer.start()
    try:
        yield expired
    finally:
        timer.cancel()
        timer.join()
        sock.close()
