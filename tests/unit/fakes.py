"""Hand-written fakes of the ports, with the same idempotency contracts as the real adapters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from kcl_app.handler import CounterUpdate, ProcessedChange
from producer.batcher import Entry
from wikitide.errors import DependencyUnavailable


class FakeEventStore:
    def __init__(self) -> None:
        self.items: dict[str, dict] = {}
        self.fail_next = 0

    def put_changes(self, changes: Sequence[ProcessedChange]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise DependencyUnavailable("fake DynamoDB is down")
        for change in changes:
            self.items[change.key] = change.doc


class FakeCounterStore:
    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.totals: Counter[str] = Counter()
        self.pages: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()

    def apply(self, updates: Sequence[CounterUpdate]) -> int:
        new = 0
        for update in updates:
            if update.key in self.seen:
                continue
            self.seen.add(update.key)
            new += 1
            self.totals.update(update.fields)
            if update.page:
                self.pages[update.page] += 1
        return new

    def count_rejected(self, reasons: Counter[str]) -> None:
        self.rejected.update(reasons)


class FakeKinesis:
    """Accepts entries, optionally failing the first `failures` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.records: list[Entry] = []
        self.failures = failures

    def put(self, entries: Sequence[Entry]) -> None:
        if self.failures:
            self.failures -= 1
            raise DependencyUnavailable("fake Kinesis is down")
        self.records.extend(entries)
