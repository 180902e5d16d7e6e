"""SSE parsing with a size limit: bytes in, frames out, and never more than one frame's limit held. Pure.

It follows the WHATWG event-stream rules (lines end at CRLF, LF or CR; `data:` lines join with LF; a blank line
dispatches; `id` persists across frames; an id holding NUL is ignored), with two additions for a hostile server:

* a line or frame larger than `max_frame_bytes` is never held: from the byte that crosses the limit its data is
  dropped, and the frame comes out as a rejected frame (`rejected="oversized"`) with no data;
* when that frame already named its own `id:` (EventStreams sends `id:` before `data:`), the reader says so at
  once (`Parsed.is_abandoned`): the caller drops the connection and resumes after that id, so even a line that
  never ends costs one reconnect. Without an id of its own, the rest of the frame is read and dropped, up to
  `max_discard_bytes`, after which `EndlessFrame` is raised (the caller treats it as a failed connection).

Payloads stay bytes: they go to JSON decoding (which checks UTF-8) and to Kinesis as they are. Ids that are not
short printable ASCII are ignored like ids holding NUL: they become an HTTP header and a stored position.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024  # four Kinesis records: an event this large is still cut to fit one
DISCARD_FACTOR = 16  # how much of a spoiled frame is read and dropped, in frame limits, before giving up
MAX_ID_CHARS = 1024  # an EventStreams id (two topic positions as JSON) is about 200 characters
OVERSIZED = "oversized"


class EndlessFrame(Exception):
    """A frame over the limit, without an id to resume after, went on past `max_discard_bytes`."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """One `message` event. `rejected` names why it carries no data; `is_abandoned`: the connection is being
    dropped right after this frame, to resume after its id."""

    data: bytes
    id: str | None
    rejected: str | None = None
    is_abandoned: bool = False


def usable_id(value: bytes) -> str | None:
    """The id as text when it can be sent back as `Last-Event-ID` and stored: printable ASCII, not too long."""
    if not value or len(value) > MAX_ID_CHARS or not value.isascii():
        return None
    text = value.decode("ascii")
    return text if text.isprintable() else None


class FrameReader:
    """Feed it a connection's bytes in any chunking; it returns the `message` frames completed so far.

    One reader per connection: a frame cut off by the end of the stream is never returned (as the spec says).
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, max_discard_bytes: int | None = None) -> None:
        self._max = max_frame_bytes
        self._max_discard = DISCARD_FACTOR * max_frame_bytes if max_discard_bytes is None else max_discard_bytes
        self._partial: list[bytes] = []  # the start of a line whose end has not arrived
        self._partial_size = 0
        self._cr = False  # the last chunk ended in CR: a LF opening the next one belongs to it
        self._skipping_line = False  # dropping the rest of a line that crossed the limit
        self._dropped = 0  # bytes dropped from the current (spoiled) frame
        self._data: list[bytes] = []
        self._size = 0
        self._event = b""
        self._own_id: str | None = None
        self._last_id: str | None = None
        self._is_spoiled = False
        self.is_abandoned = False
        self.retry_ms: int | None = None

    def feed(self, chunk: bytes) -> list[Parsed]:
        if self.is_abandoned:
            return []
        out: list[Parsed] = []
        if self._cr:
            chunk, self._cr = b"\r" + chunk, False
        if chunk.endswith(b"\r"):
            chunk, self._cr = chunk[:-1], True
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.split(b"\n")
        rest = lines.pop()
        for line in lines:
            if self._skipping_line:
                self._skipping_line = False
                self._drop(len(line))
                continue
            if self._partial:
                self._partial.append(line)
                line = b"".join(self._partial)
                self._partial, self._partial_size = [], 0
                if len(line) > self._max:
                    self._spoil(out)
                    if self.is_abandoned:
                        return out
                    continue
            self._line(line, out)
            if self.is_abandoned:
                return out
        if rest:
            self._hold(rest, out)
        return out

    def _hold(self, rest: bytes, out: list[Parsed]) -> None:
        if self._skipping_line:
            self._drop(len(rest))
            return
        self._partial.append(rest)
        self._partial_size += len(rest)
        if self._partial_size > self._max:
            dropped = self._partial_size
            self._partial, self._partial_size = [], 0
            self._skipping_line = True
            self._spoil(out)
            if not self.is_abandoned:
                self._drop(dropped)

    def _line(self, line: bytes, out: list[Parsed]) -> None:
        if not line:
            self._dispatch(out)
            return
        name, _, value = line.partition(b":")
        if not name:
            return  # a comment
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            if self._is_spoiled:
                self._drop(len(value) + 1)
                return
            self._size += len(value) + 1
            if self._size > self._max:
                self._spoil(out)
            else:
                self._data.append(value)
        elif name == b"id":
            if b"\0" not in value:
                text = usable_id(value)
                if text is not None:
                    self._own_id = self._last_id = text
        elif name == b"event":
            self._event = value
        elif name == b"retry" and value.isdigit() and len(value) <= 9:  # int() refuses 4,300 digits and more
            self.retry_ms = int(value)

    def _dispatch(self, out: list[Parsed]) -> None:
        if self._event in (b"", b"message"):
            if self._is_spoiled:
                out.append(Parsed(b"", self._own_id, OVERSIZED))
            elif self._data:
                out.append(Parsed(self._data[0] if len(self._data) == 1 else b"\n".join(self._data), self._last_id))
        self._data, self._size, self._event, self._own_id = [], 0, b"", None
        self._is_spoiled, self._dropped = False, 0

    def _spoil(self, out: list[Parsed]) -> None:
        self._is_spoiled = True
        self._data, self._size = [], 0
        if self._own_id is not None and self._event in (b"", b"message"):
            out.append(Parsed(b"", self._own_id, OVERSIZED, is_abandoned=True))
            self.is_abandoned = True

    def _drop(self, size: int) -> None:
        self._dropped += size
        if self._dropped > self._max_discard:
            raise EndlessFrame(f"a frame over {self._max} bytes without an id went on past {self._max_discard} bytes")
