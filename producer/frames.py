"""Server-sent-event frames: encoding one, and loading a recording of many.

A recording is one of three formats, told apart by content rather than by file name:

* an SSE capture (`:ok`, then `event:` / `id:` / `data:` lines, frames separated by blank lines);
* NDJSON (one JSON document per line);
* JSON objects concatenated with no separator at all.

`load_frames` keeps every payload byte for byte as recorded (it never re-serialises JSON), so a replay
hands the consumer exactly what the recording holds, malformed input included.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPLAY_TOPIC = "replay"

# SSE ends lines with CRLF, LF or CR and nothing else. str.splitlines() would also split on U+2028,
# U+0085 and friends, which JSON strings may carry unescaped.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_SSE_FIELDS = ("data", "id", "event", "retry")


@dataclass(frozen=True)
class Frame:
    """One SSE event. `event=None`: the frame had no `event:` line (clients then treat it as `message`)."""

    data: str
    id: str | None = None
    event: str | None = "message"

    def __post_init__(self) -> None:
        for name, value in (("id", self.id), ("event", self.event)):
            if value is not None and _LINE_BREAK.search(value):
                raise ValueError(f"SSE {name} cannot contain a line break: {value[:60]!r}")

    def encode(self) -> bytes:
        """The frame on the wire: `event:`, `id:`, one `data:` line per data line, then a blank line."""
        lines = []
        if self.event is not None:
            lines.append(f"event: {self.event}")
        if self.id is not None:
            lines.append(f"id: {self.id}")
        lines.extend(f"data: {line}" for line in _LINE_BREAK.split(self.data))
        return ("\n".join(lines) + "\n\n").encode("utf-8")


def replay_id(offset: int, topic: str = REPLAY_TOPIC) -> str:
    """An SSE id shaped like EventStreams' (a JSON list of topic/partition positions), for bare payloads."""
    return json.dumps([{"topic": topic, "partition": 0, "offset": offset}], separators=(",", ":"))


def load_frames(path: Path) -> list[Frame]:
    """Every frame in a recording, in file order. See the module docstring for the formats."""
    text = path.read_text(encoding="utf-8-sig")
    first = _first_line(text)
    if first.startswith(":") or first.split(":", 1)[0] in _SSE_FIELDS:
        return list(parse_sse(text))
    if _is_single_json(first):
        return list(parse_ndjson(text))
    return list(parse_concatenated(text))


def parse_sse(text: str) -> Iterator[Frame]:
    """Frames of an SSE capture, following the WHATWG parsing rules.

    Comments and `retry:` are dropped; a block without `data:` is not an event. Unlike a live client, a
    final frame with no blank line after it is kept: recordings are often cut off that way.
    """
    data: list[str] = []
    frame_id: str | None = None
    event: str | None = None
    for line in _LINE_BREAK.split(text):
        if not line:
            if data:
                yield Frame(data="\n".join(data), id=frame_id, event=event)
            data, frame_id, event = [], None, None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "id":
            frame_id = value
        elif name == "event":
            event = value
    if data:
        yield Frame(data="\n".join(data), id=frame_id, event=event)


def parse_ndjson(text: str) -> Iterator[Frame]:
    """One frame per line, with ids `replay_id(0)`, `replay_id(1)`, ...

    Blank and unparseable lines are kept as frames carrying the raw line: the pipeline counts bad input,
    and a replay must present it exactly as often as the recording does. Only the line break that ends
    the file is not a line of its own.
    """
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    for offset, line in enumerate(lines):
        yield Frame(data=line.removesuffix("\r"), id=replay_id(offset))


def parse_concatenated(text: str) -> Iterator[Frame]:
    """Frames of JSON values written back to back (whitespace between them allowed, not required).

    Text that does not decode becomes one frame holding the rest of its line, then decoding resumes on
    the next line, so one corrupt value does not swallow the rest of the file.
    """
    decoder = json.JSONDecoder()
    pos, offset = 0, 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return
        try:
            _, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            newline = text.find("\n", pos)
            end = len(text) if newline < 0 else newline
        yield Frame(data=text[pos:end].rstrip("\r"), id=replay_id(offset))
        pos, offset = end, offset + 1


def event_time(frame: Frame) -> float | None:
    """Epoch seconds of the payload's `meta.dt`, or None when the payload has no readable time.

    A `meta.dt` without a zone is taken as UTC, as the 2018 schema's timestamps are.
    """
    try:
        payload = json.loads(frame.data)
    except json.JSONDecodeError:
        return None
    meta = payload.get("meta") if isinstance(payload, dict) else None
    dt = meta.get("dt") if isinstance(meta, dict) else None
    if not isinstance(dt, str):
        return None
    try:
        parsed = datetime.fromisoformat(dt)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _first_line(text: str) -> str:
    for line in _LINE_BREAK.split(text):
        if line.strip():
            return line
    return ""


def _is_single_json(line: str) -> bool:
    try:
        json.loads(line)
    except json.JSONDecodeError:
        return False
    return True
