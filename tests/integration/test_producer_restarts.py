"""The producer process killed with SIGKILL at random moments, several times in one run: after each restart
it resumes from the position it saved in DynamoDB, and in the end every source event is in Kinesis."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import boto3
import pytest

from producer.frames import load_frames
from producer.replay import ReplayServer
from tests.conftest import RECENTCHANGE
from tests.integration.test_kinesis_writer import _read_all
from tests.integration.test_producer_faults import assert_complete_and_ordered

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _saved_position(table: str, source: str) -> str | None:
    item = boto3.client("dynamodb").get_item(TableName=table, Key={"source": {"S": source}}).get("Item")
    return item["last_event_id"]["S"] if item else None


def test_sigkill_at_random_points_loses_nothing(provisioned) -> None:
    frames = load_frames(RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson")[:1200]
    rng = random.Random(7)
    env = {**os.environ, "WIKITIDE_STACK": provisioned.stream_name.removesuffix("-changes")}
    with ReplayServer(lambda: frames, rate=100) as server:
        source = f"sse:{server.url}"
        command = [sys.executable, "-m", "wikitide", "produce", "--source", source, "--linger", "0.05"]
        kills = 0
        after_kill: list[str | None] = []
        while _saved_position(provisioned.producer_state_table, source) != frames[-1].id:
            process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if kills < 4:
                # Kill mid-stream: once this process has saved a position of its own (start-up takes one to several
                # seconds, depending on the machine's load), at a random moment after that.
                before = _saved_position(provisioned.producer_state_table, source)
                deadline = time.monotonic() + 60
                while _saved_position(provisioned.producer_state_table, source) == before and process.poll() is None:
                    assert time.monotonic() < deadline, "the producer saved no position within 60 s"
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.0, 1.0))
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)
                kills += 1
                after_kill.append(_saved_position(provisioned.producer_state_table, source))
                continue
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and process.poll() is None:
                if _saved_position(provisioned.producer_state_table, source) == frames[-1].id:
                    break
                time.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=10)  # graceful stop: flush, save, exit within 10 s
            assert process.returncode == 0, stderr.decode()[-2000:]
            assert b"resuming" in stderr
    assert kills == 4
    ids = [frame.id for frame in frames]
    killed_mid_stream = [ids.index(p) for p in after_kill if p is not None and p != ids[-1]]
    assert len(set(killed_mid_stream)) >= 3, after_kill  # the kills really landed while events flowed
    stored = _read_all(boto3.client("kinesis"), provisioned.stream_name)
    assert len(stored) >= len(frames)
    assert_complete_and_ordered(frames, stored)
