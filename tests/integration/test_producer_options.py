"""`wikitide produce --since` and the source filters, as a real producer process against a live-like SSE
server, kinesis-mock and moto: `since` goes to the server on a cold start only, a start later than asked is
reported as a GAP, and filtered-out changes never reach Kinesis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from producer.frames import Frame, load_frames
from tests.conftest import RECENTCHANGE
from tests.integration.faulty_sse import FaultySSE
from tests.integration.test_kinesis_writer import _read_all
from tests.integration.test_producer_restarts import REPO, _saved_position

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _frames(count: int = 300) -> list[Frame]:
    return load_frames(RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson")[:count]


def _produce(provisioned, server: FaultySSE, until_id: str, *options: str) -> str:
    """Run `wikitide produce` until it connected and saved `until_id` as its position, stop it with SIGTERM;
    return its stderr."""
    url, connections = server.url, len(server.connections)
    env = {**os.environ, "WIKITIDE_STACK": provisioned.stream_name.removesuffix("-changes")}
    command = [sys.executable, "-m", "wikitide", "produce", "--source", f"sse:{url}", "--linger", "0.05", *options]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            is_connected = len(server.connections) > connections
            if is_connected and _saved_position(provisioned.producer_state_table, f"sse:{url}") == until_id:
                break
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    log = stderr.decode()
    assert process.returncode == 0, log[-2000:]
    assert _saved_position(provisioned.producer_state_table, f"sse:{url}") == until_id, log[-2000:]
    return log


def _gap_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "GAP:" in line]


def test_since_is_asked_on_a_cold_start_and_a_later_start_is_reported_as_a_gap(provisioned) -> None:
    frames = _frames()
    with FaultySSE(frames, []) as server:
        log = _produce(provisioned, server, frames[-1].id, "--since", "2021-08-27T12:00:00Z")
        restart_log = _produce(provisioned, server, frames[-1].id, "--since", "2021-08-27T12:00:00Z")
    first, restart = (parse_qs(urlsplit(path).query) for path in server.paths)
    assert first == {"since": ["2021-08-27T12:00:00Z"]}
    # The first event is from 13:20:17: 1 h 20 min 17 s of the requested history is missing.
    (line,) = _gap_lines(log)
    assert "asked for events since 2021-08-27T12:00:00+00:00 but the stream starts 1:20:17 later" in line
    # A restart resumes from the saved position: no `since`, no cold-start check.
    assert restart == {} and server.connections[1] == frames[-1].id
    assert _gap_lines(restart_log) == []


def test_a_since_the_stream_could_honour_reports_no_gap(provisioned) -> None:
    frames = _frames(50)
    with FaultySSE(frames, []) as server:
        log = _produce(provisioned, server, frames[-1].id, "--since", "2021-08-27T13:19:30Z")
    assert parse_qs(urlsplit(server.paths[0]).query) == {"since": ["2021-08-27T13:19:30Z"]}
    assert _gap_lines(log) == []


def test_filters_drop_what_they_should_before_kinesis(provisioned) -> None:
    frames = _frames()
    events = [json.loads(frame.data) for frame in frames]
    kept = [
        (frame, event) for frame, event in zip(frames, events, strict=True)
        if event["wiki"] in ("wikidatawiki", "enwiki") and event["type"] == "edit" and event["bot"] is False
        and event["namespace"] == 0
    ]
    assert 10 < len(kept) < len(frames) // 4
    with FaultySSE(frames, []) as server:
        # Filtered frames move the saved position too: it ends at the last frame read, kept or not.
        assert frames[-1].id != kept[-1][0].id
        log = _produce(provisioned, server, frames[-1].id, "--wiki", "wikidatawiki", "--wiki", "enwiki",
                       "--type", "edit", "--editors", "humans", "--namespace", "0")
    stored = [json.loads(data) for data in _read_all(boto3.client("kinesis"), provisioned.stream_name)]
    assert sorted(e["meta"]["id"] for e in stored) == sorted(event["meta"]["id"] for _, event in kept)
    assert f"'filtered': {len(frames) - len(kept)}" in log
