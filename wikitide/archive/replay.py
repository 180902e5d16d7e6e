"""`wikitide archive replay`: archived records back into Kinesis, resumable, at a bounded rate.

Each record goes back exactly as it was in Kinesis (the envelope with the event, its SSE id and receive time),
keyed by its page as the producer keys it, through the producer's own writer (`producer.kinesis_writer.make_writer`,
on the path `WIKITIDE_KINESIS_PUT` names: at most one entry of a page per call or round, failed entries retried
under its bounded policy), in archive order (`read_range`). Objects written in the same second have no order
among them, so a page's order is kept within an object only; the processor's effects do not depend on it.

The position (`ReplayPosition`: the key and line of the last record of the last call that succeeded) is saved
after every call, in a file named after the range and the target stream. Interrupted and run again, a replay
starts right after it: nothing is skipped, and only a call that was in flight when it stopped can be sent twice
(processing is idempotent, so a repeat changes no count). The position also keeps when the replay first started:
only objects written before then are replayed, so the replayed records that the archive receives again (they keep
their receive time, inside the range) are not replayed once more when the replay resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from producer.batcher import Batch, Entry, partition_key_for
from producer.service import EntryWriter
from wikitide.archive.objects import Corrupt, Line, S3Archive, read_range

_decode = msgspec.json.decode


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


def _batches(lines: Iterator[Line], size: int) -> Iterator[tuple[list[Entry], Line]]:
    batch, last = Batch(), None
    for line in lines:
        entry = entry_of(line)
        if len(batch) >= size or (batch.entries and not batch.fits(entry)):
            assert last is not None
            yield batch.entries, last
            batch = Batch()
        batch.add(entry)
        last = line
    if batch.entries and last is not None:
        yield batch.entries, last


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

    size = 500 if rate is None else max(1, min(500, int(rate)))
    began = clock()
    lines = read_range(archive, start, end, corrupt, after=after, written_before=began_at)
    for entries, last in _batches(lines, size):
        writer.put(entries)
        result.records += len(entries)
        result.calls += 1
        position.save(last.key, last.index, result.records, began_at)
        on_progress(len(entries), last.key)
        if rate:
            ahead = began + result.records / rate - clock()
            if ahead > 0:
                sleep(ahead)
    return result
