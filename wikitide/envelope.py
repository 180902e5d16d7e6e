"""The Kinesis record, which is also the archive's line: a raw event with its SSE id and receive time. Pure.

A record is one line of JSON ending in a newline, so Firehose's concatenation of records is NDJSON as it is:

    {"wikitide_envelope":1,"sse_id":"[...]","received_ms":1700000000123,"event":{...the payload as received...}}

The payload is embedded byte for byte, as the JSON value it is (`event`), when it is one line that starts with `{`
and ends with `}` (every EventStreams payload); any other payload (a multi-line `data:` frame, surrounding spaces)
is kept exactly as a JSON string (`event_text`). `received_ms` is the producer's wall clock when it read the frame,
in milliseconds since the epoch; `sse_id` is the frame's `id:` (null when it had none).

`event_of` gives the payload back exactly, and passes any record that is not an envelope through unchanged, so a
reader never fails on one: a raw event written by another client stays a raw event, and a record that starts like
an envelope but is not a valid one is handed on as it is (the processor then stores it as a dead letter).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

MARKER = b'{"wikitide_envelope":1,'
_encode = msgspec.json.Encoder().encode


class _Envelope(msgspec.Struct):
    wikitide_envelope: int
    sse_id: str | None = None
    received_ms: int | None = None
    event: msgspec.Raw = msgspec.Raw(b"")
    event_text: str | None = None


_decode = msgspec.json.Decoder(_Envelope).decode


@dataclass(frozen=True, slots=True)
class Opened:
    """A record opened: the payload exactly as received, and what the producer knew about it."""

    event: bytes
    sse_id: str | None
    received_ms: int | None
    is_envelope: bool


def is_embeddable(event: bytes) -> bool:
    """True when the payload can stand in the line as its own JSON value (one line, an object, no padding)."""
    return event[:1] == b"{" and event[-1:] == b"}" and b"\n" not in event and b"\r" not in event


def header(sse_id: str | None, received_ms: int | None) -> bytes:
    return MARKER + b'"sse_id":' + _encode(sse_id) + b',"received_ms":' + _encode(received_ms)


def overhead(sse_id: str | None, received_ms: int | None) -> int:
    """The bytes `wrap` adds around an embeddable payload."""
    return len(header(sse_id, received_ms)) + len(b',"event":') + len(b"}\n")


def wrap(event: bytes, sse_id: str | None, received_ms: int | None) -> bytes:
    """The record for `event` (a payload that is valid JSON; `event_text` keeps any other exactly)."""
    if is_embeddable(event):
        return header(sse_id, received_ms) + b',"event":' + event + b"}\n"
    return header(sse_id, received_ms) + b',"event_text":' + _encode(event.decode("utf-8")) + b"}\n"


def open_record(data: bytes) -> Opened:
    """The payload and its metadata; a record that is not a valid envelope comes back whole as its own payload."""
    if data.startswith(MARKER):
        try:
            envelope = _decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return Opened(data, None, None, is_envelope=False)
        if envelope.event_text is not None:
            return Opened(envelope.event_text.encode("utf-8"), envelope.sse_id, envelope.received_ms, True)
        if bytes(envelope.event):
            return Opened(bytes(envelope.event), envelope.sse_id, envelope.received_ms, True)
    return Opened(data, None, None, is_envelope=False)


def event_of(data: bytes) -> bytes:
    """The payload a record carries, exactly as the producer received it (a non-envelope record unchanged)."""
    return open_record(data).event
