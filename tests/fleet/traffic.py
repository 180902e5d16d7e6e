"""Steady traffic of real recorded events into the fleet's stream, keyed by page as the producer keys them.

The recording is looped; each pass after the first re-keys the ids (revision, recent-change id, meta.id) and
moves the event time on by `RETIME_MINUTES`, so every pass adds new distinct events on the same pages and the
stream spans more event time than the recording (a minute): 31 minutes once the second pass begins, 61 after 3
(kinesis-mock took only about 14 records/s from the generator in a busy fresh-clone run, so few passes are sent).
A share of the events is sent a second time a little later, as producer retries and the source's repeats do.
`PutRecord` is used (kinesis-mock's `PutRecords` slows down as a stream grows); pages are spread over a few
sender lanes, one page always on the same lane, so one page's records reach Kinesis in the order they were generated.

What was sent, and so what the stores must hold, is read from the events' JSON by `tests.recorded` (plain
json and datetime), never by wikitide's own parser.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from producer.batcher import partition_key_for
from tests.recorded import counted_page, event_minute, events_table_key, is_canary

REKEY_STEP = 10**10
# Records generated but not yet accepted, per lane: when a loaded machine slows Kinesis down the rate drops
# instead of a backlog growing that a pause would then wait for.
LANE_DEPTH = 20
# Past d's 30-minute span as soon as the second pass begins.
RETIME_MINUTES = 30


@dataclass(frozen=True, slots=True)
class Sent:
    """One record as Kinesis accepted it. `is_copy` marks a deliberate second send of an earlier event."""

    dedup_key: str
    minute: int
    page: str
    shard_id: str
    sequence: str
    is_copy: bool
    wiki: str = ""
    counted_page: tuple[str, str] | None = None  # (wiki, title) when it counts as a page edit


def load_events(path: Path) -> list[dict[str, Any]]:
    """The recording's events (an NDJSON file of real recent changes), canaries left out."""
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            event = json.loads(line)
            if not is_canary(event):
                events.append(event)
    return events


def _later(dt: str, minutes: int) -> str:
    moved = datetime.fromisoformat(dt.replace("Z", "+00:00")) + timedelta(minutes=minutes)
    return moved.strftime("%Y-%m-%dT%H:%M:%SZ")


def rekeyed(event: dict[str, Any], loop: int) -> dict[str, Any]:
    if loop == 0:
        return event
    copy = json.loads(json.dumps(event))
    copy["meta"]["id"] = f"{copy['meta']['id']}-{loop}"
    copy["meta"]["dt"] = _later(copy["meta"]["dt"], loop * RETIME_MINUTES)
    if isinstance(copy.get("timestamp"), int):
        copy["timestamp"] += loop * RETIME_MINUTES * 60
    if isinstance(copy.get("id"), int):
        copy["id"] += loop * REKEY_STEP
    revision = copy.get("revision")
    if isinstance(revision, dict) and isinstance(revision.get("new"), int):
        revision["new"] += loop * REKEY_STEP
    return copy


def endless(events: list[dict[str, Any]], copy_every: int, copy_lag: int) -> Iterator[tuple[dict[str, Any], bool]]:
    """The looped, re-keyed events; every `copy_every`-th is followed by a copy of the one `copy_lag` before."""
    loop = 0
    recent: list[dict[str, Any]] = []
    index = 0
    while True:
        for event in events:
            fresh = rekeyed(event, loop)
            yield fresh, False
            recent = (recent + [fresh])[-copy_lag:]
            index += 1
            if copy_every and index % copy_every == 0 and len(recent) == copy_lag:
                yield recent[0], True
        loop += 1


class Traffic:
    """Puts events at `rate` per second until stopped; `pause()` holds it (for a quiet consistency check)."""

    def __init__(self, kinesis: Any, stream: str, events: list[dict[str, Any]], *, rate: float = 40.0,
                 lanes: int = 4, copy_every: int = 20, copy_lag: int = 7) -> None:
        self._kinesis = kinesis
        self._stream = stream
        self._source = endless(events, copy_every, copy_lag)
        self._interval = 1.0 / rate
        self._queues: list[queue.Queue[tuple[dict[str, Any], bool] | None]] = [
            queue.Queue(maxsize=LANE_DEPTH) for _ in range(lanes)
        ]
        self._lock = threading.Lock()
        self._generating = threading.Lock()
        self._sent: list[Sent] = []
        self._errors: list[str] = []
        self._running = threading.Event()
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._running.set()
        self._threads = [threading.Thread(target=self._pace, name="traffic-pace", daemon=True)]
        self._threads += [
            threading.Thread(target=self._send, args=(q,), name=f"traffic-lane-{i}", daemon=True)
            for i, q in enumerate(self._queues)
        ]
        for thread in self._threads:
            thread.start()

    def pause(self, timeout: float = 60.0) -> None:
        """Stop generating and wait until every generated record was accepted by Kinesis."""
        self._running.clear()
        with self._generating:  # a record being handed to a lane is in it once this is free
            pass
        deadline = time.monotonic() + timeout
        for lane in self._queues:
            while lane.unfinished_tasks and time.monotonic() < deadline:
                time.sleep(0.05)
        if any(lane.unfinished_tasks for lane in self._queues):
            raise AssertionError(f"traffic did not drain within {timeout:.0f}s")

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stopped.set()
        self._running.set()
        for lane in self._queues:
            lane.put(None)  # the lane skips what is left once stopped, so there is room soon
        for thread in self._threads:
            thread.join(timeout=30)

    @property
    def sent(self) -> list[Sent]:
        with self._lock:
            return list(self._sent)

    @property
    def errors(self) -> list[str]:
        with self._lock:
            return list(self._errors)

    def _pace(self) -> None:
        next_at = time.monotonic()
        while not self._stopped.is_set():
            self._running.wait()
            if self._stopped.is_set():
                return
            with self._generating:
                if not self._running.is_set():
                    continue
                event, is_copy = next(self._source)
                page = partition_key_for(event)
                lane = self._queues[zlib.crc32(page.encode("utf-8")) % len(self._queues)]
                while not self._stopped.is_set():
                    try:
                        lane.put((event, is_copy), timeout=0.5)
                        break
                    except queue.Full:
                        continue
            next_at = max(next_at + self._interval, time.monotonic() - 1.0)
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _send(self, lane: queue.Queue[tuple[dict[str, Any], bool] | None]) -> None:
        while True:
            item = lane.get()
            try:
                if item is None:
                    return
                if not self._stopped.is_set():
                    self._put(*item)
            finally:
                lane.task_done()

    def _put(self, event: dict[str, Any], is_copy: bool) -> None:
        data = json.dumps(event, ensure_ascii=False).encode("utf-8")
        page = partition_key_for(event)
        for attempt in range(1, 6):
            try:
                answer = self._kinesis.put_record(StreamName=self._stream, Data=data, PartitionKey=page)
                break
            except (BotoCoreError, ClientError) as exc:
                if attempt == 5:
                    with self._lock:
                        self._errors.append(f"{page}: {exc}")
                    return
                time.sleep(0.2 * attempt)
        sent = Sent(
            events_table_key(event), event_minute(event), page, answer["ShardId"], answer["SequenceNumber"],
            is_copy, wiki=event["wiki"], counted_page=counted_page(event),
        )
        with self._lock:
            self._sent.append(sent)
