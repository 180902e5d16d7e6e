"""The running producer process obeys the control endpoints' pause flag: it stops sending within a few seconds,
sends nothing while paused, and after the resume every source event is in Kinesis once, in order."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import boto3
import pytest

from producer.frames import load_frames
from producer.replay import ReplayServer
from tests.conftest import RECENTCHANGE
from tests.integration.test_kinesis_writer import _read_all
from tests.integration.test_producer_faults import assert_complete_and_ordered
from tests.integration.test_producer_restarts import REPO, _saved_position
from wikitide.aws import make_adapter_client
from wikitide.producer_control import ProducerControl
from wikitide.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_a_paused_producer_sends_nothing_and_resumes_without_loss(provisioned) -> None:
    frames = load_frames(RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson")[:900]
    control = ProducerControl(make_adapter_client(Settings.from_env(), "dynamodb"), provisioned.producer_state_table)
    env = {**os.environ, "WIKITIDE_STACK": provisioned.stream_name.removesuffix("-changes")}
    lines: list[tuple[float, str]] = []
    with ReplayServer(lambda: frames, rate=60) as server:
        source = f"sse:{server.url}"
        command = [sys.executable, "-m", "wikitide", "produce", "--source", source, "--linger", "0.05"]
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True)

        def read_log() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                lines.append((time.monotonic(), line))

        threading.Thread(target=read_log, daemon=True).start()
        try:
            deadline = time.monotonic() + 90
            while _saved_position(provisioned.producer_state_table, source) is None:
                assert time.monotonic() < deadline and process.poll() is None, "the producer saved no position"
                time.sleep(0.1)
            asked = time.monotonic()
            control.set_paused(True, "test")
            deadline = asked + 60
            while not any("paused (control)" in line for _, line in lines):
                assert time.monotonic() < deadline, "the producer did not pause"
                time.sleep(0.05)
            when, line = next((t, line) for t, line in lines if "paused (control)" in line)
            print(f"pause obeyed {when - asked:.2f} s after the flag was set")
            # What was read before the pause still goes to Kinesis, up to the last event read; then nothing more.
            last_read = line.rsplit("connection closed after id ", 1)[1].strip()
            deadline = time.monotonic() + 60
            while _saved_position(provisioned.producer_state_table, source) != last_read:
                assert time.monotonic() < deadline, "what was read before the pause was not all written"
                time.sleep(0.1)
            time.sleep(3.0)
            assert _saved_position(provisioned.producer_state_table, source) == last_read  # nothing read while paused
            assert last_read != frames[-1].id
            control.set_paused(False, "test")
            deadline = time.monotonic() + 120
            while _saved_position(provisioned.producer_state_table, source) != frames[-1].id:
                assert time.monotonic() < deadline and process.poll() is None, "the producer did not finish"
                time.sleep(0.2)
        finally:
            process.terminate()
            process.wait(timeout=15)
    assert any("resume requested" in line for _, line in lines)
    stored = _read_all(boto3.client("kinesis"), provisioned.stream_name)
    assert_complete_and_ordered(frames, stored)
