import json
from pathlib import Path

import pytest

from producer.frames import Frame, event_time, load_frames, parse_sse
from producer.replay import Pacer

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "recentchange"
KIRAJANO_SSE = DATA / "sse" / "kirajano_recentchange_2021-08-27.sse"
KIRAJANO_NDJSON = DATA / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def at(dt: str) -> Frame:
    return Frame(data=json.dumps({"meta": {"dt": dt}}))


# --- the shared recordings ---------------------------------------------------------------------------


def test_sse_capture_keeps_every_frame_with_its_recorded_id() -> None:
    frames = load_frames(KIRAJANO_SSE)

    assert len(frames) == 1950
    assert {f.event for f in frames} == {"message"}
    assert all(f.id and f.id.startswith('[{"topic":"eqiad.mediawiki.recentchange"') for f in frames)
    assert frames[0].id == (
        '[{"topic":"eqiad.mediawiki.recentchange","partition":0,"offset":-1},'
        '{"topic":"codfw.mediawiki.recentchange","partition":0,"timestamp":1630070417001}]'
    )


def test_ndjson_holds_the_same_payloads_as_the_sse_capture_byte_for_byte() -> None:
    sse = load_frames(KIRAJANO_SSE)
    ndjson = load_frames(KIRAJANO_NDJSON)

    assert [f.data for f in ndjson] == [f.data for f in sse]


def test_ndjson_frames_get_eventstreams_shaped_ids_counting_from_zero() -> None:
    frames = load_frames(KIRAJANO_NDJSON)

    assert len(frames) == 1950
    assert [json.loads(f.id or "") for f in frames[:2]] == [
        [{"topic": "replay", "partition": 0, "offset": 0}],
        [{"topic": "replay", "partition": 0, "offset": 1}],
    ]
    assert json.loads(frames[-1].id or "")[0]["offset"] == 1949


def test_concatenated_json_objects_are_split_apart() -> None:
    frames = load_frames(DATA / "ndjson" / "electricsql_rag_data_2024-02-06.concat.json")

    assert len(frames) == 218
    assert all(json.loads(f.data)["meta"]["domain"] for f in frames)
    assert len({f.id for f in frames}) == 218


def test_sse_frame_without_event_line_keeps_event_unset() -> None:
    frames = load_frames(DATA / "sse" / "dataplumbhub_readme_2025-04-30.sse")

    assert len(frames) == 1
    assert frames[0].event is None
    assert frames[0].id and json.loads(frames[0].id)[0]["topic"] == "eqiad.mediawiki.recentchange"
    assert json.loads(frames[0].data)["wiki"] == "commonswiki"


def test_ndjson_without_final_newline_keeps_its_last_line() -> None:
    # This file has 99 line breaks and 100 events.
    assert len(load_frames(DATA / "ndjson" / "polars_book_wikimedia_2023-07-29.ndjson")) == 100


# --- format detection and edge cases -----------------------------------------------------------------


def test_format_is_detected_from_content_not_extension(tmp_path: Path) -> None:
    sse_named_json = write(tmp_path, "a.json", "id: 7\ndata: {}\n\n")
    ndjson_named_sse = write(tmp_path, "b.sse", '{"a": 1}\n{"b": 2}\n')
    concat_named_ndjson = write(tmp_path, "c.ndjson", '{"a": 1}{"b": 2}\n{"c": 3}')

    assert load_frames(sse_named_json) == [Frame(data="{}", id="7", event=None)]
    assert [f.data for f in load_frames(ndjson_named_sse)] == ['{"a": 1}', '{"b": 2}']
    assert [f.data for f in load_frames(concat_named_ndjson)] == ['{"a": 1}', '{"b": 2}', '{"c": 3}']


def test_sse_crlf_multiline_data_and_unterminated_last_frame(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "crlf.sse",
        ":ok\r\n\r\nevent: message\r\nid: 1\r\ndata: a\r\ndata: b\r\n\r\nid: 2\r\ndata:c",
    )

    assert load_frames(path) == [
        Frame(data="a\nb", id="1", event="message"),
        Frame(data="c", id="2", event=None),
    ]


def test_sse_comments_retry_and_blocks_without_data_are_not_frames() -> None:
    text = ":ok\n\nretry: 2000\n\n:\n\nid: lonely\n\nevent: message\ndata: x\n\n"

    assert list(parse_sse(text)) == [Frame(data="x", id=None, event="message")]


def test_ndjson_keeps_blank_and_garbage_lines_as_raw_frames(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.ndjson", '{"a": 1}\n\nnot json\r\n{"b": 2}\n')

    frames = load_frames(path)

    assert [f.data for f in frames] == ['{"a": 1}', "", "not json", '{"b": 2}']
    assert [json.loads(f.id or "")[0]["offset"] for f in frames] == [0, 1, 2, 3]


def test_concatenated_garbage_becomes_one_frame_and_decoding_resumes(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.json", '{"a": 1}{"b": \n{"c": 3}')

    assert [f.data for f in load_frames(path)] == ['{"a": 1}', '{"b": ', '{"c": 3}']


def test_unicode_line_separators_inside_json_do_not_split_lines(tmp_path: Path) -> None:
    payload = json.dumps({"title": "a\u2028b\x85c"}, ensure_ascii=False)
    ndjson = write(tmp_path, "u.ndjson", payload + "\n" + payload + "\n")
    sse = write(tmp_path, "u.sse", f"data: {payload}\n\n")

    assert [f.data for f in load_frames(ndjson)] == [payload, payload]
    assert [f.data for f in load_frames(sse)] == [payload]


# --- encoding ----------------------------------------------------------------------------------------


def test_encode_writes_event_id_and_one_data_line_per_line() -> None:
    frame = Frame(data="a\nb", id="[1]")

    assert frame.encode() == b"event: message\nid: [1]\ndata: a\ndata: b\n\n"
    assert Frame(data="x", event=None).encode() == b"data: x\n\n"


def test_encoded_recording_parses_back_to_the_same_frames() -> None:
    frames = load_frames(KIRAJANO_SSE) + [Frame(data="two\nlines", id=None, event=None), Frame(data="")]

    wire = b"".join(f.encode() for f in frames).decode("utf-8")

    assert list(parse_sse(wire)) == frames


def test_line_break_in_id_is_refused() -> None:
    with pytest.raises(ValueError, match="id"):
        Frame(data="x", id="1\ndata: injected")


# --- event_time ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dt", "expected"),
    [
        ("2021-08-27T13:20:17Z", 1630070417.0),
        ("2026-02-26T15:49:36.544Z", 1772120976.544),
        ("2018-03-15T16:10:30+00:00", 1521130230.0),
        ("2018-03-15T16:10:30", 1521130230.0),
    ],
)
def test_event_time_reads_meta_dt_as_epoch_seconds(dt: str, expected: float) -> None:
    assert event_time(at(dt)) == pytest.approx(expected)


@pytest.mark.parametrize(
    "data", ["", "not json", "[1, 2]", '{"meta": 3}', '{"meta": {"dt": 5}}', '{"meta": {"dt": "soon"}}']
)
def test_event_time_is_none_without_a_readable_meta_dt(data: str) -> None:
    assert event_time(Frame(data=data)) is None


# --- pacing (pure; the replay server drives it) ----------------------------------------------------------


def test_pacing_follows_the_running_maximum_so_late_events_add_no_wait() -> None:
    pacer = Pacer(speed=1.0)
    times = ["2021-01-01T00:00:00Z", "2021-01-01T00:00:02Z", "2021-01-01T00:00:01Z", "2021-01-01T00:00:03Z"]

    assert [pacer.delay(at(t)) for t in times] == [0.0, 2.0, 0.0, 1.0]


def test_pacing_caps_long_silences_and_scales_with_speed() -> None:
    pacer = Pacer(speed=10.0, max_gap_s=5.0)

    delays = [
        pacer.delay(at(t)) for t in ["2021-01-01T00:00:00Z", "2021-01-01T01:00:00Z", "2021-01-01T01:00:01Z"]
    ]

    assert delays == pytest.approx([0.0, 0.5, 0.1])


def test_pacing_by_rate_ignores_event_times_and_speed_zero_never_waits() -> None:
    by_rate = Pacer(speed=1.0, rate=4.0)
    unpaced = Pacer(speed=0.0)
    frames = [at("2021-01-01T00:00:00Z"), at("2021-01-01T00:10:00Z"), Frame(data="garbage")]

    assert [by_rate.delay(f) for f in frames] == [0.0, 0.25, 0.25]
    assert [unpaced.delay(f) for f in frames] == [0.0, 0.0, 0.0]


def test_pacing_of_the_real_capture_takes_about_its_recorded_length() -> None:
    pacer = Pacer(speed=1.0)

    total = sum(pacer.delay(f) for f in load_frames(KIRAJANO_SSE))

    # 66 s of wall time, but the 707 backward steps in meta.dt mean the running maximum spans less.
    assert 50 < total < 70


@pytest.mark.parametrize(("speed", "rate"), [(-1.0, None), (1.0, 0.0)])
def test_pacing_refuses_negative_speed_and_non_positive_rate(speed: float, rate: float | None) -> None:
    with pytest.raises(ValueError):
        Pacer(speed=speed, rate=rate)
