"""Gaps the stream leaves behind a reconnect or a restart: reported in the log with their time range and
counted in the producer's checkpoint item in DynamoDB; a reconnect that covers everything reports none."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time

import boto3
import pytest
from click.testing import CliRunner

from producer.frames import Frame, load_frames
from producer.kinesis_writer import KinesisWriter
from producer.positions import PositionStore
from producer.service import Producer
from producer.sse_source import ReconnectPolicy, read_events
from tests.conftest import RECENTCHANGE
from tests.integration.faulty_sse import CutAfter, FaultySSE
from tests.integration.test_kinesis_writer import _read_all
from wikitide.cli import cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

FAST = ReconnectPolicy(base=0.01, max_delay=0.2)
TOPIC = "codfw.mediawiki.recentchange"


def _frames(count: int = 300) -> list[Frame]:
    return load_frames(RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson")[:count]


def _meta(frame: Frame) -> dict:
    return json.loads(frame.data)["meta"]


def _produce(server: FaultySSE, stream: str, store: PositionStore, until_id: str) -> Producer:
    """Run the producer against `server` until the checkpoint reached `until_id`, then stop it."""
    checkpoint = store.load()
    stop = threading.Event()
    events = read_events(server.url, "wikitide-tests", last_event_id=checkpoint.last_event_id, policy=FAST,
                         should_stop=stop.is_set, read_timeout=5)
    writer = KinesisWriter(boto3.client("kinesis"), stream, fast_retries=True)
    producer = Producer(events, writer, linger=0.05, checkpoint=checkpoint, on_flushed=store.save)
    runner = threading.Thread(target=producer.run, args=(stop,))
    runner.start()
    deadline = time.monotonic() + 60
    while producer.checkpoint.last_event_id != until_id and time.monotonic() < deadline and runner.is_alive():
        time.sleep(0.05)
    stop.set()
    runner.join(timeout=20)
    assert not runner.is_alive()
    assert producer.checkpoint.last_event_id == until_id
    return producer


def _store(provisioned, source: str) -> PositionStore:
    return PositionStore(boto3.client("dynamodb"), provisioned.producer_state_table, source, fast_retries=True)


def _gap_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("GAP:")]


def test_a_reconnect_that_skips_events_is_reported_with_its_range_and_counted(provisioned, caplog) -> None:
    frames = _frames()
    store = _store(provisioned, "gap-reconnect")
    with caplog.at_level(logging.WARNING, logger="producer.service"), \
            FaultySSE(frames, [CutAfter(100), CutAfter(10**9, skip=25)]) as server:
        producer = _produce(server, provisioned.stream_name, store, until_id=frames[-1].id)
    before, after = _meta(frames[99]), _meta(frames[125])
    assert _gap_lines(caplog) == [
        f"GAP: 25 offsets of {TOPIC}/0 missing after reconnect: offsets {before['offset'] + 1}..{after['offset'] - 1},"
        f" between events at {before['dt']} and {after['dt']}"
    ]
    assert (producer.stats.gaps, producer.stats.missed) == (1, 25)
    status = CliRunner().invoke(cli, ["producer-status", "--source", "gap-reconnect"],
                                env={"WIKITIDE_STACK": provisioned.stream_name.removesuffix("-changes")})
    assert status.exit_code == 0, status.output
    item = json.loads(status.output)
    assert item["last_event_id"] == frames[-1].id
    assert (item["gaps"], item["missed_offsets"]) == (1, 25)
    assert item["last_gap"] == {"topic": TOPIC, "partition": 0, "after": "reconnect", "missed": 25,
                                "last_offset": before["offset"], "next_offset": after["offset"],
                                "last_dt": before["dt"], "next_dt": after["dt"]}
    newest = _meta(frames[-1])
    assert item["partitions"] == [{"topic": TOPIC, "partition": 0, "offset": newest["offset"], "dt": newest["dt"]}]
    stored = {json.loads(d)["meta"]["id"] for d in _read_all(boto3.client("kinesis"), provisioned.stream_name)}
    assert stored == {_meta(f)["id"] for f in frames[:100] + frames[125:]}


def test_a_reconnect_that_covers_everything_reports_no_gap(provisioned, caplog) -> None:
    frames = _frames()
    store = _store(provisioned, "gap-none")
    with caplog.at_level(logging.WARNING, logger="producer.service"), \
            FaultySSE(frames, [CutAfter(100), CutAfter(60, mid_frame=True)]) as server:
        producer = _produce(server, provisioned.stream_name, store, until_id=frames[-1].id)
    assert len(server.connections) >= 3
    assert _gap_lines(caplog) == []
    assert (producer.stats.gaps, producer.stats.missed) == (0, 0)
    item = store.load_item()
    assert (item["gaps"], item["missed_offsets"]) == (0, 0) and "last_gap" not in item


def test_a_restart_that_resumes_past_skipped_events_reports_the_gap_and_keeps_counting(provisioned, caplog) -> None:
    frames = _frames()
    store = _store(provisioned, "gap-restart")
    with FaultySSE(frames[:150], []) as server:
        _produce(server, provisioned.stream_name, store, until_id=frames[149].id)
    saved = store.load()
    assert (saved.last_event_id, saved.gaps) == (frames[149].id, 0)
    assert saved.partitions[(TOPIC, 0)].offset == _meta(frames[149])["offset"]
    # Pretend an earlier run had reported two gaps: the counters are cumulative over restarts.
    store.save(dataclasses.replace(saved, gaps=2, missed=7))

    with caplog.at_level(logging.WARNING, logger="producer.service"), \
            FaultySSE(frames, [CutAfter(10**9, skip=30)]) as server:
        _produce(server, provisioned.stream_name, store, until_id=frames[-1].id)
    assert server.connections[0] == frames[149].id
    before, after = _meta(frames[149]), _meta(frames[180])
    (line,) = _gap_lines(caplog)
    assert f"30 offsets of {TOPIC}/0 missing after resume" in line and f"{before['dt']} and {after['dt']}" in line
    item = store.load_item()
    assert (item["gaps"], item["missed_offsets"]) == (3, 37)
    assert item["last_gap"]["after"] == "resume" and item["last_gap"]["missed"] == 30
