"""The bounded SSE frame reader: the specification's parsing, and limits a hostile server cannot get past."""

from __future__ import annotations

import pytest

from producer.frames import Frame
from producer.sse_frames import MAX_ID_CHARS, EndlessFrame, FrameReader, Parsed


def _read(stream: bytes, chunk: int = 7, **limits: int) -> list[Parsed]:
    reader = FrameReader(**limits)
    return [frame for start in range(0, len(stream), chunk) for frame in reader.feed(stream[start : start + chunk])]


def test_frames_come_out_whatever_the_chunking_and_line_endings() -> None:
    stream = b":ok\r\n\r\nevent: message\r\nid: a\r\ndata: {\"x\": 1}\r\n\r\nid: b\rdata: one\rdata: two\r\rdata: c\n\n"
    for chunk in (1, 2, 3, 7, len(stream)):
        assert _read(stream, chunk) == [
            Parsed(b'{"x": 1}', "a"), Parsed(b"one\ntwo", "b"), Parsed(b"c", "b"),  # the id persists, as specified
        ]


def test_a_frame_cut_off_by_the_end_of_the_stream_never_comes_out() -> None:
    assert _read(b"id: a\ndata: complete\n\nid: b\ndata: half") == [Parsed(b"complete", "a")]


def test_other_events_comments_and_retry_are_not_frames() -> None:
    reader = FrameReader()
    assert reader.feed(b"event: canary-other\ndata: x\n\n: comment\n\nretry: 1500\n\n") == []
    assert reader.retry_ms == 1500


def test_a_retry_of_any_length_is_safe() -> None:
    reader = FrameReader()
    reader.feed(b"retry: " + b"9" * 5000 + b"\nretry: x1\n\n")
    assert reader.retry_ms is None
    reader.feed(b"retry: 250\n\n")
    assert reader.retry_ms == 250


def test_frame_encode_and_the_reader_agree() -> None:
    frame = Frame(data='{"a": "line\u2028sep"}\nsecond', id="[1]")
    assert _read(frame.encode()) == [Parsed(frame.data.encode(), "[1]")]


def test_an_oversized_frame_with_its_id_first_is_rejected_at_once_and_the_connection_abandoned() -> None:
    reader = FrameReader(max_frame_bytes=100)
    out = reader.feed(b"id: big\ndata: " + b"x" * 60)
    assert out == []
    out = reader.feed(b"x" * 60)  # crosses the limit before the line ends
    assert out == [Parsed(b"", "big", "oversized", is_abandoned=True)]
    assert reader.is_abandoned
    assert reader.feed(b"x" * 1000 + b"\n\nid: next\ndata: {}\n\n") == []


def test_an_endless_line_is_never_held_in_memory() -> None:
    reader = FrameReader(max_frame_bytes=1000)
    reader.feed(b"id: e\ndata: ")
    chunk = b"y" * 65536
    for _ in range(200):  # 13 MB of one line
        reader.feed(chunk)
        if reader.is_abandoned:
            break
    assert reader.is_abandoned
    assert sum(len(part) for part in reader._partial) <= 1000


def test_an_oversized_frame_without_an_id_first_is_read_past_and_rejected_with_the_id_that_follows() -> None:
    stream = b"data: " + b"z" * 500 + b"\nid: late\n\nid: ok\ndata: {}\n\n"
    assert _read(stream, chunk=50, max_frame_bytes=100) == [Parsed(b"", "late", "oversized"), Parsed(b"{}", "ok")]


def test_many_data_lines_add_up_to_the_frame_limit() -> None:
    stream = b"".join(b"data: 0123456789\n" for _ in range(20)) + b"\ndata: small\n\n"
    assert _read(stream, chunk=13, max_frame_bytes=100) == [Parsed(b"", None, "oversized"), Parsed(b"small", None)]


def test_an_endless_frame_without_an_id_gives_up_after_the_discard_limit() -> None:
    reader = FrameReader(max_frame_bytes=100, max_discard_bytes=10_000)
    reader.feed(b"data: ")
    with pytest.raises(EndlessFrame):
        for _ in range(1000):
            reader.feed(b"w" * 100)


def test_ids_that_cannot_be_sent_back_or_stored_are_ignored() -> None:
    too_long = b"i" * (MAX_ID_CHARS + 1)
    stream = (b"id: ok\ndata: 1\n\nid: caf\xc3\xa9\ndata: 2\n\nid: a\x01b\ndata: 3\n\nid: " + too_long
              + b"\ndata: 4\n\nid: nul\x00\ndata: 5\n\n")
    assert [(f.data, f.id) for f in _read(stream)] == [(b"1", "ok"), (b"2", "ok"), (b"3", "ok"), (b"4", "ok"),
                                                       (b"5", "ok")]


def test_invalid_utf8_stays_in_the_payload_for_the_decoder_to_refuse() -> None:
    assert _read(b"id: u\ndata: {\"a\": \"\xff\"}\n\n") == [Parsed(b'{"a": "\xff"}', "u")]
