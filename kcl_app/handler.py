"""The processing core: parse, drop canaries, de-duplicate, enrich, then hand the batch to the stores.

Pure: the stores are ports. Effects are exactly-once per de-duplication key because both stores are
idempotent on that key (a conditional/overwriting put in DynamoDB, a claim-and-count script in Redis),
so a batch the KCL delivers again, in full or in part, changes nothing the first delivery did.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kcl_app.enrich import enrich
from wikitide import keys
from wikitide.errors import InvalidChange
from wikitide.events import RecentChange, parse_change

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProcessedChange:
    change: RecentChange
    doc: dict[str, Any]

    @property
    def key(self) -> str:
        return self.change.dedup_key


@dataclass(frozen=True, slots=True)
class CounterUpdate:
    """What one distinct change adds to the per-minute counters."""

    key: str
    minute: int
    wiki: str
    fields: dict[str, int]
    page: str | None
    event_ms: int
    recent_json: str


@dataclass
class BatchOutcome:
    stored: int = 0
    newly_counted: int = 0
    canaries: int = 0
    duplicates_in_batch: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


class EventStore(Protocol):
    def put_changes(self, changes: Sequence[ProcessedChange]) -> None:
        """Store each change under its key; storing the same key again leaves one item. Raises DependencyUnavailable."""


class CounterStore(Protocol):
    def apply(self, updates: Sequence[CounterUpdate]) -> int:
        """Count each key at most once ever; returns how many were new. Raises DependencyUnavailable."""

    def count_rejected(self, reasons: Counter[str]) -> None:
        """Add to the per-reason count of rejected records."""


def counter_update(item: ProcessedChange) -> CounterUpdate:
    change = item.change
    delta = change.byte_delta or 0
    fields = {
        "events": 1,
        change.type_bucket: 1,
        "bot_events" if change.is_bot else "human_events": 1,
    }
    if delta > 0:
        fields["bytes_added"] = delta
    elif delta < 0:
        fields["bytes_removed"] = -delta
    if item.doc["synthetic"]:
        fields["synthetic_events"] = 1
    return CounterUpdate(
        key=item.key,
        minute=keys.epoch_minute(change.dt),
        wiki=change.wiki,
        fields=fields,
        page=keys.page_member(change.wiki, change.title) if change.is_revision else None,
        event_ms=int(change.dt.timestamp() * 1000),
        recent_json=json.dumps(item.doc, ensure_ascii=False, sort_keys=True),
    )


def prepare(payloads: Sequence[bytes], outcome: BatchOutcome) -> list[ProcessedChange]:
    """Parse and enrich a batch, keeping the first of each key; rejects are logged once each and tallied."""
    seen: set[str] = set()
    ready: list[ProcessedChange] = []
    for payload in payloads:
        try:
            change = parse_change(payload)
        except InvalidChange as exc:
            outcome.rejected[exc.reason] += 1
            logger.warning("rejected record (%s): %s | %.200r", exc.reason, exc.detail, payload)
            continue
        if change.is_canary:
            outcome.canaries += 1
            continue
        if change.dedup_key in seen:
            outcome.duplicates_in_batch += 1
            continue
        seen.add(change.dedup_key)
        ready.append(ProcessedChange(change=change, doc=enrich(change)))
    return ready


def process_batch(payloads: Sequence[bytes], events: EventStore, counters: CounterStore) -> BatchOutcome:
    """Apply a batch. Returns only when every effect is durable; raises DependencyUnavailable otherwise,
    in which case the caller must not checkpoint past this batch."""
    outcome = BatchOutcome()
    ready = prepare(payloads, outcome)
    if ready:
        events.put_changes(ready)
        outcome.stored = len(ready)
        outcome.newly_counted = counters.apply([counter_update(item) for item in ready])
    if outcome.rejected:
        counters.count_rejected(outcome.rejected)
    return outcome
