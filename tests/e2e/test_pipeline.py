"""The whole pipeline, as a user starts it (`wikitide local up`, what `make up` runs), on a replayed recording.

A tenth of the recorded frames is sent twice, and the recording is salted with hostile frames
(`tests/e2e/hostile_frames.py`): some the producer must refuse, some the processor must store as dead letters,
and one 1.2 MB edit the producer must cut to fit and the pipeline must count. The API's answers over HTTP must
equal what this test computes from the clean file and the counted hostile edit on its own, every process must
still be running at the end, and stopping the launcher must leave no process behind.
"""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import psutil
import pytest

from tests.conftest import RECENTCHANGE
from tests.e2e.hostile_frames import (
    CUT_AND_COUNTED,
    DEAD_LETTER,
    HOSTILE_PREFIX,
    PRODUCER_REJECTS,
    HostileFrame,
    hostile_frames,
    salted,
)
from tests.recorded import events_table_key, identity
from wikitide.localstack.services import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

RECORDING = RECENTCHANGE / "sse" / "kirajano_recentchange_2021-08-27.sse"
REPO = Path(__file__).resolve().parents[2]
STACK = "wikitide-local"  # `wikitide local up`'s stack name


def _frames(text: str) -> list[str]:
    return [block for block in text.replace("\r\n", "\n").split("\n\n") if "data:" in block]


def _salted_replay(tmp: Path) -> Path:
    """The recording with every tenth frame sent twice and the hostile frames spread through it."""
    frames = _frames(RECORDING.read_text(encoding="utf-8"))
    out: list[str] = []
    for index, frame in enumerate(frames):
        out.append(frame)
        if index >= 5 and (index - 5) % 10 == 0:
            out.append(frames[index - 5])  # the copy arrives five frames after the original
    out = salted(out, HOSTILE, every=150)
    path = tmp / "replay.sse"
    path.write_text(":ok\n\n" + "\n\n".join(out) + "\n\n", encoding="utf-8")
    return path


def _recorded_events() -> list[dict]:
    events = []
    for frame in _frames(RECORDING.read_text(encoding="utf-8")):
        data = "\n".join(line[5:].lstrip() for line in frame.split("\n") if line.startswith("data:"))
        events.append(json.loads(data))
    return events


def _hostile() -> list[HostileFrame]:
    events = _recorded_events()
    edit = next(e for e in events if e["type"] == "edit")
    return hostile_frames(edit, newest_dt=max(events, key=_minute)["meta"]["dt"])


def _minute(event: dict) -> int:
    return int(datetime.fromisoformat(event["meta"]["dt"].replace("Z", "+00:00")).timestamp()) // 60


HOSTILE = _hostile()


def expected_answers(window_minutes: int) -> tuple[dict, list[dict]]:
    counted = _recorded_events() + [f.event for f in HOSTILE if f.fate == CUT_AND_COUNTED and f.event]
    distinct = {identity(e): e for e in reversed(counted)}
    latest = max(_minute(e) for e in distinct.values())
    inside = [e for e in distinct.values() if latest - window_minutes < _minute(e) <= latest]
    types = Counter(e["type"] if e["type"] in ("edit", "new", "log", "categorize") else "other" for e in inside)
    added = removed = 0
    pages: Counter[tuple[str, str]] = Counter()
    for e in inside:
        if e["type"] in ("edit", "new"):
            delta = e["length"]["new"] - (e["length"].get("old") or 0)
            added += max(delta, 0)
            removed += max(-delta, 0)
            pages[(e["wiki"], e["title"])] += 1
    stats = {
        "events": len(inside),
        "by_type": {t: types.get(t, 0) for t in ("edit", "new", "log", "categorize", "other")},
        "bot_events": sum(1 for e in inside if e.get("bot")),
        "human_events": sum(1 for e in inside if not e.get("bot")),
        "bytes_added": added,
        "bytes_removed": removed,
    }
    ranked = sorted(pages.items(), key=lambda item: (-item[1], item[0][1], item[0][0]))
    top = [{"wiki": wiki, "title": title, "edits": n} for (wiki, title), n in ranked]
    return stats, top


class Pipeline:
    def __init__(self, process: subprocess.Popen[str], api: str, log: Path, replay: Path, moto_port: int) -> None:
        self.process, self.api, self.log, self.replay, self.moto_port = process, api, log, replay, moto_port

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(self.api + path, params=params, timeout=10)

    def log_tails(self, lines: int = 25) -> str:
        """The last lines of every process's log under the launcher's state directory: what a failure needs."""
        tails = []
        for path in sorted((self.log.parent / "state" / "logs").glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            tails.append(f"\n--- {path.name} (last {len(text)} lines)\n" + "\n".join(text))
        return "".join(tails)

    def client(self, service: str) -> object:
        return boto3.client(
            service, endpoint_url=f"http://127.0.0.1:{self.moto_port}", region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test",
        )

    def table_items(self, output: str) -> list[dict]:
        """Every item of the table named by the stack output `output` (`wikitide local up`'s stack)."""
        stacks = self.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"]  # type: ignore[attr-defined]
        table = {o["OutputKey"]: o["OutputValue"] for o in stacks[0]["Outputs"]}[output]
        pages = self.client("dynamodb").get_paginator("scan").paginate(TableName=table)  # type: ignore[attr-defined]
        return [item for page in pages for item in page["Items"]]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    tmp = tmp_path_factory.mktemp("e2e")
    replay = _salted_replay(tmp)
    api_port = free_port()
    log = tmp / "launcher.log"
    command = [
        sys.executable, "-m", "wikitide", "local", "up", "--source", f"replay:{replay}", "--speed", "0",
        "--state-dir", str(tmp / "state"), "--kinesis-port", str(free_port()), "--kinesis-tls-port", str(free_port()),
        "--moto-port", str(moto_port := free_port()), "--redis-port", str(free_port()), "--api-port", str(api_port),
        "--archive-buffer-seconds", "2",
    ]
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, text=True)
    running = Pipeline(process, f"http://127.0.0.1:{api_port}", log, replay, moto_port)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_for_events(pipeline: Pipeline, expected: int, timeout: float = 420) -> dict:
    deadline = time.monotonic() + timeout
    last: dict = {}
    while time.monotonic() < deadline:
        assert pipeline.process.poll() is None, pipeline.log.read_text()
        try:
            response = pipeline.get("/v1/stats", window="24h")
            if response.status_code == 200:
                last = response.json()
                if last["events"] >= expected:
                    return last
        except httpx.TransportError:
            pass  # the API is still starting, or slow while the machine is busy: its progress is what counts
        time.sleep(1)
    pytest.fail(f"only {last.get('events')} of {expected} events after {timeout:.0f}s:\n{pipeline.log.read_text()}"
                f"{pipeline.log_tails()}")


def test_stats_equal_the_recording_counted_independently(pipeline: Pipeline) -> None:
    stats, _ = expected_answers(24 * 60)
    replayed_frames = len(_frames(pipeline.replay.read_text(encoding="utf-8")))
    assert replayed_frames - stats["events"] >= len(_recorded_events()) // 10  # duplicates the pipeline must absorb
    answered = _wait_for_events(pipeline, stats["events"])
    time.sleep(3)  # anything counted twice would show up now
    answered = pipeline.get("/v1/stats", window="24h").json()
    assert {key: answered[key] for key in stats} == stats
    assert answered["window"] == "24h"
    assert answered["synthetic_events"] == 0


def test_top_pages_equal_the_recording_counted_independently(pipeline: Pipeline) -> None:
    _, top = expected_answers(24 * 60)
    answered = pipeline.get("/v1/pages/top", window="24h", limit=100).json()
    assert answered["pages"] == top[:100]


def test_one_minute_window_ends_with_the_newest_event(pipeline: Pipeline) -> None:
    stats, _ = expected_answers(1)
    answered = pipeline.get("/v1/stats", window="1m").json()
    assert {key: answered[key] for key in stats} == stats


def test_a_stored_edit_is_served_and_health_is_green(pipeline: Pipeline) -> None:
    edit = next(e for e in _recorded_events() if e["type"] == "edit")
    response = pipeline.get(f"/v1/edits/{edit['wiki']}/{edit['revision']['new']}")
    assert response.status_code == 200
    assert response.json()["title"] == edit["title"]
    assert pipeline.get(f"/v1/edits/{edit['wiki']}/1").status_code == 404
    health = pipeline.get("/health")
    assert health.status_code == 200, health.text
    recent = pipeline.get("/v1/edits/recent", limit=5).json()["edits"]
    assert len(recent) == 5


def test_hostile_frames_end_as_dead_letters_or_producer_rejections(pipeline: Pipeline) -> None:
    _wait_for_events(pipeline, expected_answers(24 * 60)[0]["events"])
    expected = sorted(f.name for f in HOSTILE if f.fate == DEAD_LETTER)
    deadline = time.monotonic() + 120
    while True:
        letters = pipeline.table_items("DeadLetterTableName")
        payloads = [item.get("payload", {}).get("S", "") for item in letters]
        found = {p.split(HOSTILE_PREFIX, 1)[1].split('"', 1)[0] for p in payloads if HOSTILE_PREFIX in p}
        if found >= set(expected) or time.monotonic() > deadline:
            break
        time.sleep(2)
    # The producer writes at least once (a call whose answer timed out is sent again; a restarted producer resends
    # what it had not saved), so a frame may be in the stream, and become a dead letter keyed by its stream
    # position, more than once: a loaded CI run held three copies each of two of them.
    assert sorted(found) == expected
    hostile = sum(HOSTILE_PREFIX in p for p in payloads)
    assert hostile == len(letters), [item["reason"] for item in letters]  # nothing of the recording
    states = pipeline.table_items("ProducerStateTableName")
    assert len(states) == 1, states
    rejected = json.loads(states[0]["rejected"]["S"])
    assert sum(rejected.values()) == sum(1 for f in HOSTILE if f.fate == PRODUCER_REJECTS), rejected
    assert int(states[0]["truncated"]["N"]) == sum(1 for f in HOSTILE if f.fate == CUT_AND_COUNTED)
    cut = next(f.event for f in HOSTILE if f.fate == CUT_AND_COUNTED and f.event)
    stored = pipeline.get(f"/v1/edits/{cut['wiki']}/{cut['revision']['new']}")
    assert stored.status_code == 200, stored.text
    assert stored.json()["title"] == cut["title"]


def _streamed(pipeline: Pipeline, expected: int, **filters: str) -> list[tuple[str, dict]]:
    """`/v1/stream` from the start of the live feed: every event until `expected` came and then 3 s of quiet."""
    got: list[tuple[str, dict]] = []
    entry_id, event = "", ""
    deadline = time.monotonic() + 120
    timeout = httpx.Timeout(10.0, read=3.0)
    with httpx.stream("GET", f"{pipeline.api}/v1/stream", params={"last_event_id": "0-0", **filters},
                      timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        try:
            for line in response.iter_lines():
                if not line:
                    event = ""
                elif line.startswith("id: "):
                    entry_id = line[4:]
                elif line.startswith("event: "):
                    event = line[7:]  # a `gap` notice: none is expected, the feed never reached its cap
                elif line.startswith("data: ") and not event:
                    got.append((entry_id, json.loads(line[6:])))
                assert time.monotonic() < deadline, f"{len(got)} of {expected} streamed changes"
        except httpx.ReadTimeout:
            pass  # quiet: the feed has nothing more for now
    return got


def test_the_live_stream_holds_each_counted_change_once_and_filters_it(pipeline: Pipeline) -> None:
    _wait_for_events(pipeline, expected_answers(24 * 60)[0]["events"])
    counted = _recorded_events() + [f.event for f in HOSTILE if f.fate == CUT_AND_COUNTED and f.event]
    distinct = {identity(e): e for e in counted}.values()
    expected = sorted(events_table_key(e) for e in distinct)
    streamed = _streamed(pipeline, len(expected))
    assert sorted(doc["key"] for _, doc in streamed) == expected  # every counted change, once
    ids = [entry_id for entry_id, _ in streamed]
    assert ids == sorted(ids, key=lambda i: tuple(int(part) for part in i.split("-")))
    # `editor=bot`: a bot's change whose user is known (a suppressed user is `suppressed`, whatever the flag).
    edits = sorted(events_table_key(e) for e in distinct
                   if e["type"] == "edit" and e.get("bot") and e.get("user") is not None)
    filtered = _streamed(pipeline, len(edits), type="edit", editor="bot")
    assert sorted(doc["key"] for _, doc in filtered) == edits
    # Resuming after an id gives exactly what followed it.
    middle = ids[len(ids) // 2]
    with httpx.stream("GET", f"{pipeline.api}/v1/stream", headers={"Last-Event-ID": middle},
                      timeout=httpx.Timeout(10.0, read=3.0)) as response:
        after: list[str] = []
        try:
            for line in response.iter_lines():
                if line.startswith("id: ") and line[4:] not in after and line[4:] != middle:
                    after.append(line[4:])
        except httpx.ReadTimeout:
            pass
    assert after == ids[len(ids) // 2 + 1:]


def _archived_events(pipeline: Pipeline) -> list[dict]:
    """Every event in the local archive bucket, read with plain gzip and json (the envelope's `event`)."""
    stacks = pipeline.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"]  # type: ignore[attr-defined]
    bucket = {o["OutputKey"]: o["OutputValue"] for o in stacks[0]["Outputs"]}["ArchiveBucketName"]
    s3 = pipeline.client("s3")
    events = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="raw/"):  # type: ignore[attr-defined]
        for item in page.get("Contents", []):
            body = gzip.decompress(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())  # type: ignore[attr-defined]
            for line in body.splitlines():
                record = json.loads(line)
                events.append(record["event"] if "event" in record else json.loads(record["event_text"]))
    return events


def test_make_up_archives_every_distinct_event_in_the_local_bucket(pipeline: Pipeline) -> None:
    _wait_for_events(pipeline, expected_answers(24 * 60)[0]["events"])
    expected = {identity(e) for e in _recorded_events()}
    sent_hostile = sorted(f.name for f in HOSTILE if f.fate in (DEAD_LETTER, CUT_AND_COUNTED))
    deadline = time.monotonic() + 180
    while True:
        archived = _archived_events(pipeline)
        hostile = sorted(e["meta"]["id"].removeprefix(HOSTILE_PREFIX) for e in archived
                         if isinstance(e.get("meta"), dict) and str(e["meta"].get("id", "")).startswith(HOSTILE_PREFIX))
        found = {identity(e) for e in archived if not str(e["meta"]["id"]).startswith(HOSTILE_PREFIX)}
        if (found >= expected and sorted(set(hostile)) == sent_hostile) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert found == expected  # every distinct recorded event, and nothing that was not sent
    assert sorted(set(hostile)) == sent_hostile  # what reached Kinesis is archived, refused or not by the processor


def test_a_fixed_dead_letter_is_replayed_through_the_pipeline_once(pipeline: Pipeline) -> None:
    # After the archive test: the replayed record is a new record in the stream (and so in the archive).
    expected = _wait_for_events(pipeline, expected_answers(24 * 60)[0]["events"])["events"]
    token = (pipeline.log.parent / "state" / "control-token").read_text().strip()
    auth = {"Authorization": f"Bearer {token}"}
    assert pipeline.get("/v1/control/dead-letters").status_code == 401
    listed = httpx.get(f"{pipeline.api}/v1/control/dead-letters", headers=auth, timeout=10).json()["items"]
    assert listed, "the hostile frames left dead letters"
    letter = listed[0]["id"]
    fixed = json.loads(json.dumps(next(e for e in _recorded_events() if e["type"] == "edit")))
    fixed["revision"]["new"], fixed["id"] = 987_654_321_001, 987_654_321_001
    fixed["meta"]["id"] = "wikitide-replayed-fix-1"
    url = f"{pipeline.api}/v1/control/dead-letters/{letter.replace('#', '%23')}/replay"
    replayed = httpx.post(url, headers=auth, json={"payload": fixed}, timeout=10)
    assert replayed.status_code == 202, replayed.text
    assert httpx.post(url, headers=auth, json={"payload": fixed}, timeout=10).status_code == 409
    deadline = time.monotonic() + 180
    while pipeline.get(f"/v1/edits/{fixed['wiki']}/987654321001").status_code != 200:
        assert time.monotonic() < deadline, "the replayed record was not stored"
        time.sleep(1)
    key = events_table_key(fixed)
    streamed = [doc for _, doc in _streamed(pipeline, expected + 1) if doc["key"] == key]
    assert len(streamed) == 1
    assert pipeline.get("/v1/stats", window="24h").json()["events"] == expected + 1


def test_stopping_leaves_no_process_behind(pipeline: Pipeline) -> None:
    # The producer reads every hostile frame: it must never have died. (A KCL worker may restart after a
    # store timed out on a busy machine: that is redelivery, not a hostile record.)
    assert "producer exited with" not in pipeline.log.read_text(), "the producer died on the hostile frames"
    launcher = psutil.Process(pipeline.process.pid)
    children = launcher.children(recursive=True)
    names = " ".join(" ".join(child.cmdline()) for child in children)
    for expected in ("kinesis-local", "moto_server", "redis-server", "MultiLangDaemon", "gunicorn",
                     "wikitide-kcl-processor", "produce", "archive forward"):
        assert expected in names, f"{expected} is not running: {names}"
    pipeline.process.send_signal(signal.SIGINT)
    assert pipeline.process.wait(timeout=120) == 0, pipeline.log.read_text()
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [p.cmdline() for p in alive]
    assert "wikitide: stopped" in pipeline.log.read_text()
