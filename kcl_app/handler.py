"""The processing core: parse, drop canaries, de-duplicate, enrich, then hand the batch to the stores.

Pure: the stores are ports. The KCL delivers at least once; effects are exactly once because
- an event is stored under its de-duplication key by the first record that claims it, and a record's
  redelivery finds its own claim (a duplicate from the source or the producer finds another record's claim);
- counters are counted per (minute, scope, shard) cell with the sequence number of the last counted record
  (`kcl_app/ledger.py`), so a redelivered, replayed or zombie batch adds nothing; a page's edits are its
  claimed revisions (`page_edits_of`), counted by the mirror under the same rule;
- a poison record is stored under its own stream position in the dead-letter store and counted like any
  record, through the ledger.

Nothing about one record's content can fail a batch: a record the strict parse refuses is a dead letter with
its reason (`wikitide.events.REASONS`). What fails later is told apart by its kind: a transient store failure
(`DependencyUnavailable`) leaves the batch for redelivery; a store's permanent refusal (`RequestRefused`) or an
unexpected exception splits the batch in halves, as AWS Lambda's BisectBatchOnFunctionError does, down to the
single records that fail, and each of those becomes a dead letter with reason `processing_error`. Every effect
is idempotent and the halves run in stream order, so what the failed attempt already wrote is not written twice.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from kcl_app import ledger
from kcl_app.enrich import enrich
from kcl_app.ledger import CellKey, CellState, Contribution, PageEdit
from wikitide import keys
from wikitide.errors import DependencyUnavailable, InvalidChange, RequestRefused
from wikitide.events import RecentChange, parse_change

logger = logging.getLogger(__name__)

PROCESSING_ERROR = "processing_error"
DETAIL_LIMIT = 500


# More user records than an aggregated Kinesis record (1 MiB, a few bytes of framing each) can hold.
SUB_SEQUENCE_SPAN = 2**20


def ordinal(sequence_number: str, sub_sequence_number: int | None = None) -> int:
    """A record's place in its shard as one integer: the Kinesis record's sequence number, then the user record's
    place within it when the record is an aggregate (`wikitide.aggregation`; the KCL hands each user record over with
    the aggregate's sequence number and its own sub-sequence number). Every rule that orders a shard's records (the
    counter cells' marks, the page edits, the claims' positions) orders these."""
    return int(sequence_number) * SUB_SEQUENCE_SPAN + (sub_sequence_number or 0)


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One record as the KCL hands it over (a user record of an aggregate, or a plain Kinesis record); `sequence`
    is its `ordinal`."""

    data: bytes
    shard: str
    sequence: int
    arrival_ms: int

    @property
    def position(self) -> str:
        """`<shard>#<sequence number>`, and `.<sub-sequence number>` for a user record of an aggregate past its
        first: what a person looks up in Kinesis (`position_ordinal` reads it back)."""
        sequence_number, sub = divmod(self.sequence, SUB_SEQUENCE_SPAN)
        return f"{self.shard}#{sequence_number}.{sub}" if sub else f"{self.shard}#{sequence_number}"


def position_ordinal(position: str) -> tuple[str, int]:
    """The shard and `ordinal` of a `StreamRecord.position`."""
    shard, _, place = position.rpartition("#")
    sequence_number, _, sub = place.partition(".")
    return shard, ordinal(sequence_number, int(sub) if sub else 0)


@dataclass(frozen=True, slots=True)
class ProcessedChange:
    change: RecentChange
    doc: dict[str, Any]
    record: StreamRecord
    key: str  # the change's dedup_key, computed once: every store reads it several times


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: StreamRecord
    reason: str
    detail: str


@dataclass
class BatchOutcome:
    records: int = 0
    claimed: int = 0
    duplicates: int = 0
    canaries: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    cells: int = 0
    oldest_event_ms: int | None = None  # the earliest `meta.dt` among the events claimed, ms since the epoch

    def add(self, other: BatchOutcome) -> None:
        self.records += other.records
        self.claimed += other.claimed
        self.duplicates += other.duplicates
        self.canaries += other.canaries
        self.rejected.update(other.rejected)
        self.cells += other.cells
        if other.oldest_event_ms is not None:
            self.oldest_event_ms = min(other.oldest_event_ms, self.oldest_event_ms or other.oldest_event_ms)


class EventStore(Protocol):
    def claim(self, changes: Sequence[ProcessedChange]) -> list[ProcessedChange]:
        """Store each change under its key unless a different record already holds that key. Returns the
        changes whose record holds the key: first claims and redeliveries of the holder. Idempotent.
        Raises DependencyUnavailable."""


class DeadLetterStore(Protocol):
    def put(self, letters: Sequence[DeadLetter]) -> None:
        """Store each letter under its record's stream position. Idempotent. Raises DependencyUnavailable."""


class CounterLedger(Protocol):
    def apply(self, shard: str, contributions: Sequence[Contribution]) -> list[CellState]:
        """Count each contribution its cell has not counted yet; return the state of every touched cell.
        Raises DependencyUnavailable, having counted a prefix at most (a retry counts the rest)."""


class CounterMirror(Protocol):
    def publish(self, states: Sequence[CellState], changes: Sequence[ProcessedChange]) -> None:
        """Merge cell states into the fast read model, count the page edits of `changes` (the batch's claimed
        changes, in sequence order) and list them as recent. Idempotent: a state in any order, a shard's changes
        in its sequence order (each batch published before the next, as the KCL delivers them).
        Raises DependencyUnavailable."""


@dataclass(frozen=True)
class Stores:
    events: EventStore
    dead_letters: DeadLetterStore
    ledger: CounterLedger
    mirror: CounterMirror


def change_fields(change: RecentChange, doc: dict[str, Any]) -> dict[str, int]:
    """What one distinct change adds to its minute's totals and to its wiki's."""
    delta = change.byte_delta or 0
    fields = {"events": 1, change.type_bucket: 1, "bot_events" if change.is_bot else "human_events": 1}
    if delta > 0:
        fields["bytes_added"] = delta
    elif delta < 0:
        fields["bytes_removed"] = -delta
    if doc["synthetic"]:
        fields["synthetic_events"] = 1
    return fields


@lru_cache(maxsize=8192)
def _cell(minute: int, scope: str) -> CellKey:
    """Cells of the totals and of a wiki recur across a batch: built once (a frozen dataclass is slow to make)."""
    return CellKey(minute, scope)


def contributions_of(item: ProcessedChange) -> list[Contribution]:
    change, sequence = item.change, item.record.sequence
    minute = keys.epoch_minute(change.dt)
    fields = change_fields(change, item.doc)
    return [
        Contribution(_cell(minute, ledger.TOTAL), sequence, fields),
        Contribution(_cell(minute, ledger.wiki_scope(change.wiki)), sequence, fields),
    ]


def page_edits_of(claimed: Sequence[ProcessedChange]) -> list[PageEdit]:
    """The page edits of a batch's claimed changes, in the batch's (sequence) order: its revisions."""
    return [
        PageEdit(keys.epoch_minute(item.change.dt), item.record.shard, item.record.sequence, item.change.wiki,
                 item.change.title)
        for item in claimed
        if item.change.is_revision and item.change.title
    ]


def rejection_of(letter: DeadLetter) -> Contribution:
    minute = letter.record.arrival_ms // 60_000
    return Contribution(CellKey(minute, ledger.REJECTED), letter.record.sequence, {letter.reason: 1})


def recent_json(item: ProcessedChange) -> str:
    return json.dumps(item.doc, ensure_ascii=False, sort_keys=True)


def recent_score(item: ProcessedChange) -> int:
    """Where a change sorts among the recent changes (and in the events table's time index): its event time in
    milliseconds; changes of the same millisecond sort by their key."""
    return int(item.change.dt.timestamp() * 1000)


def prepare(records: Sequence[StreamRecord], outcome: BatchOutcome) -> tuple[list[ProcessedChange], list[DeadLetter]]:
    """Parse and enrich a batch, keeping the first record of each key; rejects become dead letters."""
    seen: set[str] = set()
    ready: list[ProcessedChange] = []
    letters: list[DeadLetter] = []
    for record in records:
        try:
            change = parse_change(record.data, record.arrival_ms)
        except InvalidChange as exc:
            outcome.rejected[exc.reason] += 1
            letters.append(DeadLetter(record, exc.reason, exc.detail))
            logger.warning("rejected record %s (%s): %s | %.200r",
                           record.position, exc.reason, exc.detail, record.data[:200])
            continue
        if change.is_canary:
            outcome.canaries += 1
            continue
        key = change.dedup_key
        if key in seen:
            outcome.duplicates += 1
            continue
        seen.add(key)
        ready.append(ProcessedChange(change=change, doc=enrich(change), record=record, key=key))
    return ready, letters


def process_batch(records: Sequence[StreamRecord], stores: Stores) -> BatchOutcome:
    """Apply one shard's batch, in order, isolating the records that cannot be stored (see the module docstring).

    Returns only when every effect is durable; raises `DependencyUnavailable` (not `RequestRefused`) when a store
    is unavailable, and the caller must not checkpoint past this batch."""
    try:
        return apply_batch(records, stores)
    except RequestRefused as exc:
        failure: Exception = exc
    except DependencyUnavailable:
        raise
    except Exception as exc:  # a bug or an unforeseen input: isolate it rather than lose or block the batch
        failure = exc
    if len(records) == 1:
        logger.error("record %s cannot be processed, stored as a dead letter", records[0].position, exc_info=failure)
        return give_up(records[0], f"{type(failure).__name__}: {failure}", stores)
    logger.warning("batch of %d from %s failed (%s: %.300s), splitting it", len(records),
                   records[0].position, type(failure).__name__, failure)
    middle = len(records) // 2
    outcome = process_batch(records[:middle], stores)
    outcome.add(process_batch(records[middle:], stores))
    return outcome


def give_up(record: StreamRecord, detail: str, stores: Stores) -> BatchOutcome:
    """Store `record` as a dead letter with reason `processing_error` and count it, without processing it."""
    letter = DeadLetter(record, PROCESSING_ERROR, detail[:DETAIL_LIMIT])
    stores.dead_letters.put([letter])
    states = stores.ledger.apply(record.shard, [rejection_of(letter)])
    stores.mirror.publish(states, [])
    outcome = BatchOutcome(records=1, cells=len(states))
    outcome.rejected[PROCESSING_ERROR] += 1
    return outcome


def apply_batch(records: Sequence[StreamRecord], stores: Stores) -> BatchOutcome:
    """Apply one shard's batch, in order. Returns only when every effect is durable; raises whatever a store
    raises, and the caller must not checkpoint past this batch."""
    outcome = BatchOutcome(records=len(records))
    if not records:
        return outcome
    ready, letters = prepare(records, outcome)
    claimed = stores.events.claim(ready) if ready else []
    outcome.claimed = len(claimed)
    if claimed:
        outcome.oldest_event_ms = min(int(item.change.dt.timestamp() * 1000) for item in claimed)
    outcome.duplicates += len(ready) - len(claimed)
    if letters:
        stores.dead_letters.put(letters)
    contributions = [c for item in claimed for c in contributions_of(item)]
    contributions.extend(rejection_of(letter) for letter in letters)
    states = stores.ledger.apply(records[0].shard, contributions) if contributions else []
    outcome.cells = len(states)
    if states or claimed:
        stores.mirror.publish(states, claimed)
    return outcome
