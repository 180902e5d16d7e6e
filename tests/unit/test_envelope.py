"""The Kinesis record that is also the archive's line: the payload comes back byte for byte, with its metadata."""

from __future__ import annotations

import gzip
import json

from hypothesis import given
from hypothesis import strategies as st

from producer.batcher import MAX_DATA_BYTES, to_entry
from tests.conftest import RECENTCHANGE
from wikitide import envelope

SSE = RECENTCHANGE / "sse" / "kirajano_recentchange_2021-08-27.sse"


def _recorded_frames(limit: int = 200) -> list[tuple[str, bytes]]:
    frames = []
    for block in SSE.read_text(encoding="utf-8").replace("\r\n", "\n").split("\n\n"):
        lines = block.split("\n")
        ids = [line[3:].strip() for line in lines if line.startswith("id:")]
        data = "\n".join(line[5:].lstrip() for line in lines if line.startswith("data:"))
        if data:
            frames.append((ids[0] if ids else "", data.encode("utf-8")))
        if len(frames) == limit:
            break
    return frames


def test_recorded_payloads_come_back_byte_for_byte_with_their_id_and_time() -> None:
    for sse_id, data in _recorded_frames():
        record = envelope.wrap(data, sse_id, 1_700_000_000_123)
        opened = envelope.open_record(record)
        assert (opened.event, opened.sse_id, opened.received_ms, opened.is_envelope) == (
            data, sse_id, 1_700_000_000_123, True)
        assert record.endswith(b"\n") and record.count(b"\n") == 1
        assert json.loads(record)["event"] == json.loads(data)  # the event is a JSON value, queryable as such


def test_a_payload_that_is_not_one_line_is_kept_exactly_as_text() -> None:
    for data in (b'{"a":\n 1}', b'  {"a": 1}', b'{"a": 1}\r', b"[1, 2]"):
        record = envelope.wrap(data, None, 5)
        assert record.count(b"\n") == 1
        assert envelope.open_record(record).event == data


@given(st.dictionaries(st.text(max_size=20), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(), lambda inner: st.lists(inner, max_size=3), max_leaves=8),
    max_size=6), st.one_of(st.none(), st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126))))
def test_any_json_object_round_trips(event: dict, sse_id: str | None) -> None:
    for data in (json.dumps(event).encode(), json.dumps(event, indent=1).encode(), json.dumps(event,
                                                                                            ensure_ascii=False).encode()):
        opened = envelope.open_record(envelope.wrap(data, sse_id, 1))
        assert (opened.event, opened.sse_id) == (data, sse_id)


def test_records_that_are_not_envelopes_pass_through_unchanged() -> None:
    for data in (b'{"meta": {}}', b"\xff\xfe binary", b'{"wikitide_envelope":1,"sse_id":', b""):
        opened = envelope.open_record(data)
        assert (opened.event, opened.is_envelope) == (data, False)


def test_the_producer_entry_is_the_envelope_and_fits_a_record_with_the_longest_id() -> None:
    event = {"meta": {"id": "m", "dt": "2024-01-01T00:00:00Z"}, "type": "edit", "wiki": "enwiki", "title": "T",
             "tags": ["x" * 1000] * 1200}
    long_id = "[" + '"' * 1022 + "]"  # quotes: the id's JSON text is as long as it gets
    entry = to_entry(json.dumps(event), long_id, received_ms=42)
    assert len(entry.data) <= MAX_DATA_BYTES
    opened = envelope.open_record(entry.data)
    assert opened.sse_id == long_id and opened.received_ms == 42
    assert json.loads(opened.event)["wikitide_truncated"] == ["tags"]


def test_concatenated_records_are_ndjson() -> None:
    frames = _recorded_frames(20)
    body = gzip.decompress(gzip.compress(b"".join(envelope.wrap(d, i, 7) for i, d in frames)))
    assert [envelope.open_record(line + b"\n").event for line in body.split(b"\n") if line] == [d for _, d in frames]
