"""Property tests of the producer's frame handling, on hostile frames made from the real recordings.

Whatever the frames, nothing escapes `Producer.run`; every frame read ends as exactly one of sent, skipped or
rejected; the saved position moves with every frame (it ends at the last frame read), never backwards; the
frame reader never holds more than its limit. Expectations come from the frames as generated, not from the
producer's own parser.
"""

from __future__ import annotations

import copy
import json
import threading
from functools import cache
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from producer.batcher import MAX_DATA_BYTES
from producer.progress import MAX_PARTITIONS, Checkpoint
from producer.service import Producer
from producer.sse_frames import EndlessFrame, FrameReader
from producer.sse_source import SourceEvent
from tests.conftest import RECENTCHANGE
from tests.unit.fakes import FakeKinesis
from wikitide.envelope import event_of

RECORDINGS = ("kirajano_recentchange_2021-08-27.ndjson", "polars_book_wikimedia_2023-07-29.ndjson",
              "dataplumbhub_stream_2025-05-03.ndjson")
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def real_events() -> tuple[dict[str, Any], ...]:
    events = []
    for name in RECORDINGS:
        with (RECENTCHANGE / "ndjson" / name).open(encoding="utf-8") as lines:
            for line in lines:
                if len(events) % 150 == 149:
                    break
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(event, dict):
                    events.append(event)
    return tuple(events)


def _swap_type(event: dict[str, Any], key: str, value: Any) -> bytes:
    path = key.split(".")
    target = event
    for part in path[:-1]:
        target = target.setdefault(part, {}) if isinstance(target.get(part), dict) else target
    target[path[-1]] = value
    return json.dumps(event).encode()


FIELDS = ["id", "type", "namespace", "title", "wiki", "bot", "user", "meta", "meta.id", "meta.dt", "meta.domain",
          "meta.topic", "meta.partition", "meta.offset", "revision", "revision.new", "length", "length.old"]
ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False),
    st.text(max_size=30), st.sampled_from(["--5", "\u00b2", "1e5", "", "canary"]), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@st.composite
def hostile_payload(draw: st.DrawFn) -> bytes:
    event = copy.deepcopy(draw(st.sampled_from(real_events())))
    kind = draw(st.sampled_from(["as_is", "type_swap", "deep", "invalid_utf8", "oversized_field", "oversized_kept",
                                 "invented_topic", "not_json", "not_object", "truncated_json", "canary"]))
    if kind == "type_swap":
        return _swap_type(event, draw(st.sampled_from(FIELDS)), draw(ODD_VALUES))
    if kind == "deep":
        depth = draw(st.sampled_from([33, 200, 5_000, 100_000]))
        event["log_params"] = "@"
        return json.dumps(event).encode().replace(b'"@"', b"[" * depth + b"]" * depth)
    if kind == "invalid_utf8":
        data = json.dumps(event, ensure_ascii=False).encode()
        at = draw(st.integers(min_value=0, max_value=len(data)))
        return data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"])) + data[at:]
    if kind == "oversized_field":
        field = draw(st.sampled_from(["tags", "comment", "log_params", "parsedcomment", "unknown_blob"]))
        event[field] = ["t" * 1000] * 1100 if field == "tags" else "x" * draw(st.sampled_from([1_048_000, 3_000_000]))
        return json.dumps(event).encode()
    if kind == "oversized_kept":
        event[draw(st.sampled_from(["title", "user"]))] = "k" * 1_100_000
        return json.dumps(event).encode()
    if kind == "invented_topic":
        meta = event.setdefault("meta", {})
        meta["topic"] = draw(st.text(min_size=1, max_size=300))
        meta["partition"] = draw(st.integers(min_value=0, max_value=2**40))
        meta["offset"] = draw(st.integers(min_value=0, max_value=2**64))
        return json.dumps(event).encode()
    if kind == "not_json":
        return draw(st.binary(max_size=200))
    if kind == "not_object":
        return json.dumps(draw(ODD_VALUES)).encode()
    if kind == "truncated_json":
        data = json.dumps(event).encode()
        return data[: draw(st.integers(min_value=0, max_value=len(data) - 1))]
    if kind == "canary":
        event.setdefault("meta", {})["domain"] = "canary"
    return json.dumps(event).encode()


@st.composite
def hostile_frames(draw: st.DrawFn) -> list[SourceEvent]:
    payloads = draw(st.lists(hostile_payload(), min_size=1, max_size=12))
    rejected_on_read = draw(st.lists(st.booleans(), min_size=len(payloads), max_size=len(payloads)))
    return [SourceEvent(b"" if refused else payload, f"frame-{n}", rejected="oversized" if refused else None)
            for n, (payload, refused) in enumerate(zip(payloads, rejected_on_read, strict=True))]


@PROPERTY
@given(frames=hostile_frames())
def test_every_frame_is_sent_skipped_or_rejected_and_the_position_moves_past_it(frames: list[SourceEvent]) -> None:
    kinesis, saved = FakeKinesis(), []
    producer = Producer(iter(frames), kinesis, linger=0.001, on_flushed=saved.append)
    stats = producer.run(threading.Event())  # nothing escapes

    sent = [entry.sse_id for entry in kinesis.records]
    assert len(sent) == len(set(sent))
    assert stats.read == len(frames)
    assert len(sent) + sum(stats.skipped.values()) + sum(stats.rejected.values()) == len(frames)
    for frame in frames:
        if frame.rejected is not None:
            assert frame.id not in sent
    for entry in kinesis.records:
        assert len(entry.data) <= MAX_DATA_BYTES and len(entry.partition_key) <= 256
        stored = json.loads(event_of(entry.data))
        assert isinstance(stored, dict)
        if entry.truncated:
            assert stored["wikitide_truncated"] == list(entry.truncated)

    positions = [int(c.last_event_id.removeprefix("frame-")) for c in saved]
    assert positions == sorted(positions)
    final: Checkpoint = saved[-1]
    assert final.last_event_id == frames[-1].id
    assert dict(final.rejected) == dict(stats.rejected)
    assert final.truncated == stats.truncated
    assert len(final.partitions) <= MAX_PARTITIONS
    assert len(final.partitions_json()) <= MAX_PARTITIONS * 400


def _sse_bytes(payloads: list[bytes], ids: bool) -> bytes:
    out = b":ok\n\n"
    for n, payload in enumerate(payloads):
        head = b"event: message\n" + (f"id: frame-{n}\n".encode() if ids else b"")
        out += head + b"".join(b"data: " + line + b"\n" for line in payload.split(b"\n")) + b"\n"
    return out


@PROPERTY
@given(payloads=st.lists(st.one_of(st.binary(max_size=300).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
                                   st.integers(min_value=1, max_value=5000).map(lambda n: b"h" * n)),
                         min_size=1, max_size=10),
       chunk=st.integers(min_value=1, max_value=700), limit=st.sampled_from([64, 1000, 4096]))
@example(payloads=[b"h" * 4090], chunk=1, limit=4096).via("the longest line that fits: `data: ` and 4,090 bytes")
@example(payloads=[b"h" * 4091], chunk=1, limit=4096).via("one byte more: the line is over, the frame is not")
def test_the_frame_reader_never_holds_more_than_its_limit(payloads: list[bytes], chunk: int, limit: int) -> None:
    stream = _sse_bytes(payloads, ids=True)
    reader = FrameReader(max_frame_bytes=limit)
    out = []
    for start in range(0, len(stream), chunk):
        out.extend(reader.feed(stream[start : start + chunk]))
        assert reader._partial_size <= limit and reader._size <= limit
        if reader.is_abandoned:
            break
    expected = []
    for n, payload in enumerate(payloads):
        # A line is held up to the limit with its field name (`data: `), a frame's data with a newline per line.
        if len(b"data: " + payload) > limit or len(payload) + 1 > limit:
            expected.append((b"", f"frame-{n}", "oversized"))
            break  # the reader abandons the connection there; the next one resumes after this id
        expected.append((payload, f"frame-{n}", None))
    assert [(f.data, f.id, f.rejected) for f in out] == expected


@PROPERTY
@given(stream=st.binary(max_size=3000), chunk=st.integers(min_value=1, max_value=500))
def test_the_frame_reader_survives_any_bytes(stream: bytes, chunk: int) -> None:
    reader = FrameReader(max_frame_bytes=128, max_discard_bytes=1024)
    try:
        for start in range(0, len(stream), chunk):
            for frame in reader.feed(stream[start : start + chunk]):
                assert len(frame.data) <= 128
                assert frame.id is None or (frame.id.isascii() and frame.id.isprintable())
    except EndlessFrame:
        pass
