"""`wikitide archive replay`: archived records back into Kinesis, resumable, at a bounded rate.

Each record goes back exactly as it was in Kinesis (the envelope with the event, its SSE id and receive time),
keyed by its page as the producer keys it, through the producer's own writer (`producer.kinesis_writer.make_writer`,
on the path `WIKITIDE_KINESIS_PUT` names: at most one entry of a page per call or round, failed entries retried
under its bounded policy), in archive order (`read_range`). Objects written in the same second have no order
among them, so a page's order is kept within an object only; the processor's effects do not depend on it.

Calls are planned as the producer plans them (`producer.pending.Pending`): each page has a queue, and a call takes
the head of every page, oldest first, up to 500 entries (or `--rate`), so a hot page does not split every batch
into many small calls (1,500 recorded changes: 10 calls, against 27 when each batch of 500 was split into rounds).
At most `READ_AHEAD_CALLS` calls' worth of records are held ahead of the position.

The position (`ReplayPosition`: the key and line of the last record that every earlier record was written before)
is saved after every call, in a file named after the range and the target stream. Interrupted and run again, a
replay starts right after it: nothing is skipped, and what is sent twice is at most what was held ahead of the
position (a hot page's later changes wait for its earlier ones while other pages' records are written; processing
is idempotent, so a repeat changes no count). The position also keeps when the replay first started:
only objects written before then are replayed, so the replayed records that the archive receives again (they keep
their receive time, inside the range) are not replayed once more when the replay resumes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from producer.batcher import MAX_BATCH_RECORDS, Entry, partition_key_for
from producer.pending import Pending
from producer.service import EntryWriter, SizedCalls
from wikitide.archive.objects import Corrupt, Line, S3Archive, read_range

_decode = msgspec.json.decode

# Records read ahead of the position, in calls: bounds what is held and what a resumed replay can send twice.
READ_AHEAD_CALLS = 4


class ReplayPosition:
    """Where a replay of one range into one stream stands, in a JSON file (written atomically)."""

    def __init__(self, state_dir: Path, bucket: str, start: datetime, end: datetime, stream: str) -> None:
        name = f"{bucket}|{start.isoformat()}|{end.isoformat()}|{stream}"
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / f"archive-replay-{digest}.json"
        self._name = name

    def load(self) -> tuple[tuple[str, int], datetime] | None:
        """The last record put (key, line) and when the replay first started, or None for a replay not begun."""
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return (str(saved["key"]), int(saved["line"])), datetime.fromisoformat(saved["began"])

    def save(self, key: str, line: int, records: int, began: datetime) -> None:
        body = {"replay": self._name, "key": key, "line": line, "records": records, "began": began.isoformat()}
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(body), encoding="utf-8")
        os.replace(temporary, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass
class ReplayResult:
    records: int = 0
    calls: int = 0
    corrupt: list[Corrupt] | None = None
    resumed_after: tuple[str, int] | None = None


def entry_of(line: Line) -> Entry:
    try:
        event = _decode(line.opened.event)
    except msgspec.DecodeError:
        event = None
    return Entry(data=line.data, partition_key=partition_key_for(event if isinstance(event, dict) else {}))


def replay(
    archive: S3Archive, writer: EntryWriter, position: ReplayPosition, start: datetime, end: datetime, *,
    rate: float | None = None, on_corrupt: Callable[[Corrupt], None], on_progress: Callable[[int, str], None],
    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
) -> ReplayResult:
    """Put every record received in [start, end) after the saved position into `writer` (the producer's),
    at most `rate` records a second; `on_progress(records, key)` after every call."""
    saved = position.load()
    after, began_at = saved if saved else (None, datetime.now(UTC))
    result = ReplayResult(corrupt=[], resumed_after=after)

    def corrupt(found: Corrupt) -> None:
        assert result.corrupt is not None
        result.corrupt.append(found)
        on_corrupt(found)

    size = MAX_BATCH_RECORDS if rate is None else max(1, min(MAX_BATCH_RECORDS, int(rate)))
    began = clock()
    pending = Pending()
    held: deque[Line] = deque()  # the lines in `pending`, in archive order

    sized = writer if isinstance(writer, SizedCalls) else None

    def send() -> None:
        entries = pending.next_call(min(size, sized.max_call_entries) if sized is not None else size)
        writer.put(entries)
        result.records += len(entries)
        result.calls += 1
        passed = None
        for _ in pending.written():
            passed = held.popleft()
        if passed is not None:
            position.save(passed.key, passed.index, result.records, began_at)
        on_progress(len(entries), (passed or held[0]).key)
        if rate:
            ahead = began + result.records / rate - clock()
            if ahead > 0:
                sleep(ahead)

    for line in read_range(archive, start, end, corrupt, after=after, written_before=began_at):
        pending.add(entry_of(line), 0.0)
        held.append(line)
        if pending.is_ready(0.0, math.inf, size) or len(pending) >= READ_AHEAD_CALLS * size:
            send()
    while pending.has_heads:
        send()
    return result
