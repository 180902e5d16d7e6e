"""`wikitide backfill` as a real process against the replay server answering `since=` as EventStreams does
(only its retention held; an older `since` starts from the newest event), kinesis-mock and moto.

The source is the recording in three passes, each 20 minutes of event time after the one before, with ids of its
own (`tests.fleet.traffic.rekeyed`), so a gap of event time can be asked for. What the stream must hold is
computed from the events' JSON with plain `json` (`tests.recorded`), not with wikitide's parser.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import boto3
import pytest

from producer.frames import Frame
from producer.replay import ReplayServer
from tests.conftest import RECENTCHANGE
from tests.fleet.traffic import load_events, rekeyed
from tests.integration.test_producer_restarts import REPO
from tests.recorded import identity
from tests.stream import read_records

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PASSES = 3
EVENTS_PER_PASS = 200


def _passes() -> list[list[dict]]:
    events = load_events(RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson")[:EVENTS_PER_PASS]
    return [[rekeyed(event, loop) for event in events] for loop in range(PASSES)]


def _frames(passes: list[list[dict]]) -> list[Frame]:
    frames = []
    for index, event in enumerate(e for one in passes for e in one):
        frames.append(Frame(json.dumps(event, ensure_ascii=False), id=json.dumps([{"offset": index}])))
    return frames


def _dt(event: dict) -> datetime:
    return datetime.fromisoformat(event["meta"]["dt"].replace("Z", "+00:00"))


def _backfill(provisioned, url: str, since: datetime, until: datetime) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WIKITIDE_STACK": provisioned.stream_name.removesuffix("-changes"),
           "WIKITIDE_KINESIS_PUT": "auto"}
    command = [sys.executable, "-m", "wikitide", "backfill", "--source", f"sse:{url}", "--linger", "0.05",
               "--since", since.isoformat(), "--until", until.isoformat()]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=150)


def _stored(provisioned) -> list[dict]:
    records = read_records(boto3.client("kinesis"), provisioned.stream_name)
    return [json.loads(record.data) for shard in records.values() for record in shard]


def test_a_gap_inside_the_retention_is_filled_through_the_producer_path_and_the_backfill_ends_after_it(
    provisioned,
) -> None:
    passes = _passes()
    gap = passes[1]
    since = min(_dt(e) for e in gap).replace(second=0)
    until = max(_dt(e) for e in gap)
    with ReplayServer(lambda: _frames(passes), held_from=_dt(passes[0][0])) as server:
        answer = _backfill(provisioned, server.url, since, until)
        asked = list(server.since_asked)
    assert answer.returncode == 0, answer.stderr[-3000:]
    assert asked == [since.strftime("%Y-%m-%dT%H:%M:%SZ")]
    stored = _stored(provisioned)
    # Exactly the gap's events: the backfill began at `since` and ended at the first event past it (pass 3,
    # 20 minutes later); what it read went into Kinesis in the producer's envelope.
    assert sorted(map(identity, stored)) == sorted(map(identity, gap))
    assert f"backfilled {len(gap)} events" in answer.stdout
    assert f"wrote {len(gap)}" in answer.stdout


def test_a_gap_older_than_the_retention_is_said_plainly_and_nothing_is_written(provisioned) -> None:
    passes = _passes()
    gap = passes[0]
    since = min(_dt(e) for e in gap).replace(second=0)
    until = max(_dt(e) for e in gap)
    # The server holds only the last two passes: asked for the first, it starts from the newest event.
    with ReplayServer(lambda: _frames(passes), held_from=_dt(passes[1][0])) as server:
        answer = _backfill(provisioned, server.url, since, until)
    assert answer.returncode == 1, answer.stderr[-3000:]
    assert f"the gap {since.isoformat()} .. {until.isoformat()} is older than what EventStreams still holds" \
        in answer.stderr
    assert "Nothing was backfilled" in answer.stderr
    assert _stored(provisioned) == []


def test_until_before_since_is_refused(provisioned) -> None:
    now = datetime.now(UTC)
    answer = _backfill(provisioned, "http://127.0.0.1:9/none", now, now.replace(year=now.year - 1))
    assert answer.returncode == 2
    assert "is not after --since" in answer.stderr
