"""The archive on the local stack: a recorded stream through the real producer, kinesis-mock, the forwarder and
moto's Firehose into S3, then `wikitide archive stats` and `wikitide archive replay` on what landed.

One stack for the whole file (its tests run in order): 300 recorded frames (a tenth sent twice) go through the
producer while the stream is resharded 2 -> 4 halfway, with a record that is not JSON put beside them. What the
archive must hold is computed from the recording with plain `json` (`tests/recorded.py`), not with wikitide's code.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import redis

from api import create_app
from kcl_app.bootstrap import build_stores
from kcl_app.handler import process_batch
from producer.frames import Frame, load_frames
from producer.kinesis_writer import Writer, make_writer
from producer.replay import ReplayServer
from producer.service import Producer
from producer.sse_source import read_events
from tests.conftest import RECENTCHANGE
from tests.recorded import identity
from tests.stream import read_records
from tests.unit.test_metrics import RecordingMetrics
from wikitide import stack
from wikitide.aggregation import user_records
from wikitide.archive import layout
from wikitide.archive.forwarder import FirehoseSink, Forwarder, KinesisReader, ShardPositions
from wikitide.archive.local import delivery_stream_name, ensure_delivery_stream
from wikitide.archive.objects import S3Archive, read_range
from wikitide.archive.replay import READ_AHEAD_CALLS
from wikitide.aws import make_adapter_client, make_client
from wikitide.envelope import open_record
from wikitide.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

RECORDING = RECENTCHANGE / "sse" / "kirajano_recentchange_2021-08-27.sse"
FRAMES = 300
NOT_JSON = b"\xff\x00 a record that is not JSON, and has no newline"
REPO = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 240.0


def _frames() -> list[Frame]:
    frames = load_frames(RECORDING)[:FRAMES]
    out: list[Frame] = []
    for index, frame in enumerate(frames):
        out.append(frame)
        if index >= 5 and (index - 5) % 10 == 0:
            out.append(frames[index - 5])
    return out


def _recorded() -> dict[bytes, str | None]:
    """Each recorded payload (bytes) and its SSE id."""
    return {frame.data.encode("utf-8"): frame.id for frame in load_frames(RECORDING)[:FRAMES]}


@dataclass
class Archived:
    name: str
    resources: stack.StackResources
    state: Path
    env: dict[str, str]
    positions: ShardPositions
    kinesis_records: int  # events in the stream: each event written, the rewritten ones twice, and one not JSON
    started: datetime
    rewritten: int  # events whose aggregate landed on a shard outside their hash keys (written again)

    def archive(self) -> S3Archive:
        return S3Archive(boto3.client("s3"), self.resources.archive_bucket)

    def lines(self) -> list:
        end = datetime.now(UTC) + timedelta(hours=1)
        return list(read_range(self.archive(), self.started - timedelta(hours=1), end, lambda c: None))

    def cli(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "wikitide", *args], cwd=REPO, env=env or self.env,
                              capture_output=True, text=True, timeout=timeout)

    def range_args(self) -> list[str]:
        start = (self.started - timedelta(minutes=5)).isoformat()
        end = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        return ["--start", start, "--end", end]


def _last_offsets(frames: list[Frame]) -> dict[tuple[str, int], int]:
    """The highest offset of each partition among `frames`, read from their events' `meta` with plain `json`."""
    last: dict[tuple[str, int], int] = {}
    for frame in frames:
        meta = json.loads(frame.data)["meta"]
        key = (meta["topic"], meta["partition"])
        last[key] = max(last.get(key, -1), meta["offset"])
    return last


def _produce(frames: list[Frame], writer: Writer) -> int:
    """Runs the producer on `frames` until its durable position holds the last of them. Not until it has read as
    many frames as there are: what it has read is not what is in Kinesis (a loaded fresh-clone run stopped on the
    read count with 217 of 330 records in the stream), and only the durable position promises the latter."""
    last = _last_offsets(frames)

    def durable() -> bool:
        partitions = producer.checkpoint.partitions
        return all(key in partitions and partitions[key].offset >= offset for key, offset in last.items())

    with ReplayServer(lambda: frames, close_at_end=False) as server:
        stop = threading.Event()
        producer = Producer(read_events(server.url, "wikitide-tests", should_stop=stop.is_set), writer, linger=0.05)
        failures: list[BaseException] = []

        def run() -> None:
            try:
                producer.run(stop)
            except BaseException as exc:
                failures.append(exc)

        runner = threading.Thread(target=run)
        runner.start()
        deadline = time.monotonic() + WAIT_SECONDS
        while not durable() and runner.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()
        runner.join(timeout=60)
    assert not failures, failures
    assert durable(), (producer.stats, producer.checkpoint)
    return producer.stats.written


def _wait_active(kinesis: object, stream: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        summary = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]  # type: ignore[attr-defined]
        if summary["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.2)
    pytest.fail(f"{stream} not ACTIVE")


@pytest.fixture(scope="module")
def archived(local_stack: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archived]:
    settings = Settings.from_env()
    name = f"wt-arch-{uuid.uuid4().hex[:8]}"
    resources = stack.deploy_local(make_client(settings, "cloudformation"), make_client(settings, "kinesis"), name)
    kinesis = boto3.client("kinesis")
    delivery = delivery_stream_name(name)
    ensure_delivery_stream(boto3.client("firehose"), delivery, resources.archive_bucket)
    state = tmp_path_factory.mktemp("archive")
    reader = KinesisReader(make_adapter_client(settings, "kinesis"), resources.stream_name)
    positions = ShardPositions(state / "positions.json", resources.stream_name, reader.created())
    forwarder = Forwarder(reader, FirehoseSink(boto3.client("firehose"), delivery), positions, buffer_seconds=0.3)
    stop = threading.Event()
    thread = threading.Thread(target=forwarder.run, args=(stop,))
    started = datetime.now(UTC)
    thread.start()
    # The producer's writer, events packed into aggregated records; one writer for both halves, so the second
    # half's first aggregates are packed by the shard map of before the reshard, and written again one by one.
    measured = RecordingMetrics()
    writer = make_writer(kinesis, resources.stream_name, "records", metrics=measured)
    try:
        frames = _frames()
        written = _produce(frames[: len(frames) // 2], writer)
        kinesis.put_record(StreamName=resources.stream_name, Data=NOT_JSON, PartitionKey="not-json")
        kinesis.update_shard_count(StreamName=resources.stream_name, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
        _wait_active(kinesis, resources.stream_name)
        written += _produce(frames[len(frames) // 2:], writer)
        # Firehose delivers what it reads, so the events of an aggregate that landed on the wrong shard are archived
        # twice: as the aggregate's (which the KCL drops) and as the records written again.
        rewritten = int(measured.counts["EventsRewritten"])
        assert rewritten >= 1
        total = written + rewritten + 1
        deadline = time.monotonic() + WAIT_SECONDS
        while forwarder.stats.records < total and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.2)
        assert forwarder.stats.records >= total, (forwarder.stats, total)
    finally:
        writer.close()
        stop.set()
        thread.join(timeout=60)
    env = {**os.environ, "WIKITIDE_STACK": name}
    yield Archived(name, resources, state, env, positions, total, started, rewritten)


@pytest.fixture(scope="module")
def archived_lines(archived: Archived) -> list[bytes]:
    """Every archived line, as read before any test adds an object."""
    return [line.data for line in archived.lines()]


def test_the_archive_holds_every_distinct_recorded_event_byte_for_byte(archived: Archived, measure) -> None:
    recorded = _recorded()
    lines = archived.lines()
    opened = [line.opened for line in lines if line.opened.is_envelope]
    assert {event.event for event in opened} == set(recorded)  # nothing missing, nothing altered
    assert all(event.sse_id == recorded[event.event] for event in opened)
    assert all(archived.started.timestamp() * 1000 <= (event.received_ms or 0) <= time.time() * 1000
               for event in opened)
    distinct = {identity(json.loads(data)) for data in recorded}
    assert {identity(json.loads(event.event)) for event in opened} == distinct
    measure("archive records / distinct events", f"{len(lines)} / {len(distinct)}")


def _raw_records(stream: str) -> dict[str, list[bytes]]:
    """Every event of the stream as stored (not unwrapped from its envelope), per shard, in order: an aggregated
    record's events one by one, as Firehose delivers them."""
    kinesis = boto3.client("kinesis")
    by_shard: dict[str, list[bytes]] = {}
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records = by_shard.setdefault(shard["ShardId"], [])
        while iterator:
            answer = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            records.extend(data for record in answer["Records"] for _, data in user_records(record["Data"]))
            if not answer["Records"] and answer.get("MillisBehindLatest", 0) == 0:
                break
            iterator = answer.get("NextShardIterator")
    return by_shard


def test_every_record_is_archived_in_its_shard_order_and_parents_before_children(archived: Archived) -> None:
    """Objects written in the same second have no order among them (the random part of Firehose's names), so the
    order is checked within each object, and parents against children by the second their objects were written.

    A frame sent twice within one millisecond makes two byte-identical records, which no reader can tell apart: the
    archive must hold each as many times as the stream does, and order is checked on the records whose bytes are
    the stream's only ones."""
    shards = boto3.client("kinesis").list_shards(StreamName=archived.resources.stream_name)["Shards"]
    parents = {s["ParentShardId"] for s in shards if s.get("ParentShardId")}
    assert len(parents) == 2 and parents <= archived.positions.finished
    raw = {shard: [r if r.endswith(b"\n") else r + b"\n" for r in records]
           for shard, records in _raw_records(archived.resources.stream_name).items()}
    copies = Counter(line for records in raw.values() for line in records)
    lines = archived.lines()
    assert Counter(line.data for line in lines) == copies  # every record archived as often as stored, nothing else
    where = {line.data: (line.key, line.index) for line in lines if copies[line.data] == 1}
    # A tenth of the frames is sent twice, so at most 60 of the 331 records share their bytes (a copy read in the
    # same millisecond as its original, which the fast replay often makes); the rewritten events are there twice.
    once = sum(copies.values()) - 2 * archived.rewritten
    assert len(where) >= 0.75 * once, (len(where), once)
    placed = {shard: [where[line] for line in records if line in where] for shard, records in raw.items()}
    for shard, positions in placed.items():
        for key in {key for key, _ in positions}:
            in_object = [index for k, index in positions if k == key]
            assert in_object == sorted(in_object), (shard, key)
    for shard in shards:
        parent, child = shard.get("ParentShardId"), shard["ShardId"]
        if parent and placed[parent] and placed[child]:
            last_parent = max(layout.written_at(key) for key, _ in placed[parent])
            first_child = min(layout.written_at(key) for key, _ in placed[child])
            assert last_parent <= first_child, (parent, child)


def test_a_record_that_is_not_json_is_archived_on_its_own_line_and_blocks_nothing(archived: Archived) -> None:
    lines = archived.lines()
    assert [line.data for line in lines if not line.opened.is_envelope] == [NOT_JSON + b"\n"]
    assert len(lines) == archived.kinesis_records


def _expected_by_wiki() -> dict[str, dict[str, int]]:
    distinct = {identity(json.loads(data)): json.loads(data) for data in _recorded()}
    by_wiki: dict[str, Counter[str]] = {}
    for event in distinct.values():
        kind = event["type"] if event["type"] in ("edit", "new", "log", "categorize") else "other"
        by_wiki.setdefault(event["wiki"], Counter())[kind] += 1
    return {wiki: dict(sorted(kinds.items())) for wiki, kinds in by_wiki.items()}


def test_stats_counts_distinct_events_by_wiki_and_type(archived: Archived) -> None:
    answer = archived.cli("archive", "stats", *archived.range_args(), "--json")
    assert answer.returncode == 0, answer.stderr
    stats = json.loads(answer.stdout)
    assert stats["by_wiki"] == _expected_by_wiki()
    assert stats["records"] == archived.kinesis_records
    assert stats["invalid"] == {"not_json": 1}
    assert stats["corrupt_objects"] == []


def test_a_corrupt_or_truncated_object_is_reported_with_its_key_and_skipped(
    archived: Archived, archived_lines: list[bytes]
) -> None:
    s3 = boto3.client("s3")
    prefix = f"raw/{datetime.now(UTC):%Y/%m/%d/%H}/"
    stamp = f"{datetime.now(UTC):%Y-%m-%d-%H-%M-%S}"
    garbage = f"{prefix}{archived.name}-archive-1-{stamp}-00000000-0000-0000-0000-garbage00000"
    truncated = f"{prefix}{archived.name}-archive-1-{stamp}-00000000-0000-0000-0000-truncated000"
    good_line = archived_lines[0]
    s3.put_object(Bucket=archived.resources.archive_bucket, Key=garbage, Body=b"this is not gzip")
    s3.put_object(Bucket=archived.resources.archive_bucket, Key=truncated,
                  Body=gzip.compress(good_line * 50)[:-20])
    answer = archived.cli("archive", "stats", *archived.range_args(), "--json")
    assert answer.returncode == 1
    stats = json.loads(answer.stdout)
    assert sorted(c["key"] for c in stats["corrupt_objects"]) == sorted([garbage, truncated])
    assert garbage in answer.stderr and truncated in answer.stderr
    assert stats["by_wiki"] == _expected_by_wiki() and stats["records"] == archived.kinesis_records


WINDOWS = ("1m", "5m", "1h", "24h")


def _api_answers(stack_name: str, redis_db_url: str) -> dict[str, object]:
    """Every `/v1/stats` and `/v1/pages/top` answer for every window, over all wikis and the busiest three."""
    settings = Settings.from_env({**os.environ, "WIKITIDE_STACK": stack_name, "REDIS_URL": redis_db_url,
                                  "WIKITIDE_METRICS": "off"})  # no publisher left in this process after the test
    client = create_app(settings, health_checks={}).test_client()
    events = [json.loads(data) for data in _recorded()]
    busiest = [wiki for wiki, _ in Counter(e["wiki"] for e in events).most_common(3)]
    answers: dict[str, object] = {}
    for window in WINDOWS:
        for wiki in (None, *busiest):
            scope = f"&wiki={wiki}" if wiki else ""
            for path in (f"/v1/stats?window={window}{scope}", f"/v1/pages/top?window={window}{scope}&limit=100"):
                response = client.get(path)
                assert response.status_code == 200, (path, response.get_data(as_text=True))
                answers[path] = response.get_json()
    return answers


def _process_stream(stream: str, resources: stack.StackResources, redis_db_url: str) -> None:
    """What the KCL workers would do with the stream: every shard's records, in order, through the processor."""
    client = redis.Redis.from_url(redis_db_url, decode_responses=True)
    client.flushdb()
    stores, _ = build_stores(boto3.client("dynamodb"), client, resources)
    for records in read_records(boto3.client("kinesis"), stream).values():
        process_batch(records, stores)


def test_replaying_into_an_empty_stack_answers_as_the_original_run(archived: Archived, redis_url: str) -> None:
    """The original run (the archived stream, processed into a stack of its own) against a replay of the archive
    into an empty stack (its own stream, tables and Redis database): the same API answers for every window."""
    settings = Settings.from_env()
    base = redis_url.rsplit("/", 1)[0]
    runs = {}
    for name, db in (("original", 1), ("replayed", 2)):
        stack_name = f"{archived.name}-{name}"
        resources = stack.deploy_local(make_client(settings, "cloudformation"), make_client(settings, "kinesis"),
                                       stack_name)
        runs[name] = (stack_name, resources, f"{base}/{db}")
    original_name, original, original_redis = runs["original"]
    _process_stream(archived.resources.stream_name, original, original_redis)
    replayed_name, replayed, replayed_redis = runs["replayed"]
    answer = archived.cli("archive", "replay", *archived.range_args(), "--bucket", archived.resources.archive_bucket,
                          "--state-dir", str(archived.state / "empty-stack"),
                          env={**archived.env, "WIKITIDE_STACK": replayed_name, "WIKITIDE_KINESIS_PUT": "auto"})
    assert answer.returncode == 0, answer.stderr
    assert f"replayed {archived.kinesis_records} records" in answer.stdout and "(auto)" in answer.stdout
    _process_stream(replayed.stream_name, replayed, replayed_redis)
    before, after = _api_answers(original_name, original_redis), _api_answers(replayed_name, replayed_redis)
    assert after == before
    totals = before["/v1/stats?window=24h"]
    assert isinstance(totals, dict)
    assert totals["events"] == len({identity(json.loads(data)) for data in _recorded()})  # not an empty answer


def _counters(client: redis.Redis) -> dict[str, object]:
    found: dict[str, object] = {}
    for key in client.scan_iter("wt:m:*"):
        found[key] = client.hgetall(key)
    for key in client.scan_iter("wt:p:*"):
        found[key] = client.zrange(key, 0, -1, withscores=True)
    return found


def test_replaying_twice_into_the_processed_stream_changes_no_count(archived: Archived, redis_url: str) -> None:
    kinesis = boto3.client("kinesis")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stores, _ = build_stores(boto3.client("dynamodb"), client, archived.resources)
    original = read_records(kinesis, archived.resources.stream_name)
    for records in original.values():
        process_batch(records, stores)
    before = _counters(client)
    expected_events = len({identity(json.loads(data)) for data in _recorded()})
    minute_totals = [v for k, v in before.items() if k.startswith("wt:m:") and k.count(":") == 2]
    minute_events = sum(int(v.get("events", 0)) for v in minute_totals)
    assert minute_events == expected_events

    for _ in range(2):
        answer = archived.cli("archive", "replay", *archived.range_args(), "--state-dir", str(archived.state),
                              "--from-start")
        assert answer.returncode == 0, answer.stderr
        assert f"replayed {archived.kinesis_records} records" in answer.stdout
        assert "2 corrupt objects skipped" in answer.stdout
    after = read_records(kinesis, archived.resources.stream_name)
    replayed = Counter(r.data for shard in after for r in after[shard][len(original.get(shard, [])):])
    assert sum(replayed.values()) == 2 * archived.kinesis_records
    for shard, records in after.items():
        process_batch(records[len(original.get(shard, [])):], stores)
    assert _counters(client) == before


def test_an_interrupted_replay_resumes_without_a_gap(archived: Archived, archived_lines: list[bytes]) -> None:
    kinesis = boto3.client("kinesis")
    target = f"{archived.name}-replay"
    kinesis.create_stream(StreamName=target, ShardCount=2)
    _wait_active(kinesis, target)
    state = archived.state / "interrupted"
    command = [sys.executable, "-m", "wikitide", "archive", "replay", *archived.range_args(), "--into", target,
               "--state-dir", str(state)]
    # First on PutRecord lanes (the path the local stack moves to as its stream grows).
    env = {**archived.env, "WIKITIDE_KINESIS_PUT": "record"}
    first = subprocess.Popen([*command, "--rate", "40"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    saved: dict = {}
    while time.monotonic() < deadline and first.poll() is None and saved.get("records", 0) < 80:
        for path in state.glob("archive-replay-*.json"):
            saved = json.loads(path.read_text())  # replaced atomically: always whole
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    _, first_err = first.communicate(timeout=60)
    assert "via PutRecord lanes" in first_err
    assert 80 <= saved["records"] < archived.kinesis_records  # interrupted part-way
    # Resumed on the local stack's own path (`auto`): the position does not depend on the write path.
    second = subprocess.run(command, cwd=REPO, env=archived.env, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stderr
    assert "resumed after" in second.stdout and "(auto)" in second.stdout
    stored = Counter(r.data for records in read_records(kinesis, target).values() for r in records)
    wanted = Counter(open_record(line).event for line in archived_lines)
    assert set(stored) == set(wanted)  # no gap
    extra = sum(stored.values()) - sum(wanted.values())
    # At most what was written ahead of the position (a page's later change waits for its earlier one while other
    # pages' changes are written) and the call in flight when it stopped: READ_AHEAD_CALLS calls at --rate 40.
    assert 0 <= extra <= READ_AHEAD_CALLS * 40
