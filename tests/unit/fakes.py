"""Hand-written fakes of the ports, with the same idempotency contracts as the real adapters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from kcl_app import ledger
from kcl_app.handler import DeadLetter, ProcessedChange, Stores, page_edits_of
from kcl_app.ledger import CellKey, CellState, Contribution, PageEdit
from kcl_app.redelivery import Delivery, next_delivery
from producer.batcher import Entry
from wikitide.errors import DependencyUnavailable, RequestRefused


class ProcessDied(BaseException):  # noqa: N818 - a stand-in for SIGKILL, not an error
    """What a fake raises to play a process killed mid-batch: no `except Exception` stops it."""


class FakeEventStore:
    def __init__(self) -> None:
        self.items: dict[str, dict] = {}
        self.holders: dict[str, str] = {}
        self.held: dict[str, ProcessedChange] = {}
        self.latest: dict[str, dict] = {}
        self.fail_next = 0
        self.refused: set[str] = set()  # keys whose item DynamoDB refuses (ValidationException)
        self.broken: set[str] = set()  # keys that make the adapter raise an unforeseen error
        self.fatal: set[str] = set()  # keys that kill the process

    def claim(self, changes: Sequence[ProcessedChange]) -> list[ProcessedChange]:
        if self.fail_next:
            self.fail_next -= 1
            raise DependencyUnavailable("fake DynamoDB is down")
        for change in changes:
            if change.key in self.fatal:
                raise ProcessDied(change.key)
            if change.key in self.refused:
                raise RequestRefused(f"claim in events: ValidationException: item of {change.key} too large")
            if change.key in self.broken:
                raise TypeError(f"unforeseen: {change.key}")
        held = []
        for change in changes:
            holder = self.holders.setdefault(change.key, change.record.position)
            if holder == change.record.position:
                self.items[change.key] = change.doc
                self.held[change.key] = change
                held.append(change)
        return held

    def page_edits(self) -> list[PageEdit]:
        """What `DynamoEventStore.scan_page_edits` reads: every held revision as its page edit."""
        return page_edits_of(list(self.held.values()))


class FakeDeadLetters:
    def __init__(self) -> None:
        self.letters: dict[str, DeadLetter] = {}

    def put(self, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            self.letters[letter.record.position] = letter


def scope_totals(states: Iterable[CellState], scope: str) -> Counter[str]:
    result: Counter[str] = Counter()
    for state in states:
        if state.cell.scope == scope:
            result.update(state.values)
    return result


class FakeLedger:
    """Cells in a dict, with the marks of the real ledger; `fail_after` cells lets a batch half-apply."""

    def __init__(self) -> None:
        self.cells: dict[tuple[CellKey, str], CellState] = {}
        self.fail_after: int | None = None

    def apply(self, shard: str, contributions: Sequence[Contribution]) -> list[CellState]:
        states = []
        for cell, group in ledger.group(contributions).items():
            if self.fail_after is not None:
                if self.fail_after == 0:
                    self.fail_after = None
                    raise DependencyUnavailable("fake DynamoDB failed mid-batch")
                self.fail_after -= 1
            current = self.cells.get((cell, shard))
            delta = ledger.delta_after(cell, group, current.sequence if current else None)
            if delta is not None:
                values = Counter(current.values if current else {})
                values.update(delta.fields)
                current = CellState(cell, shard, delta.sequence, dict(values))
                self.cells[(cell, shard)] = current
            assert current is not None
            states.append(current)
        return states

    def totals(self, scope: str = ledger.TOTAL) -> Counter[str]:
        return scope_totals(self.cells.values(), scope)


class FakeMirror:
    """Keeps the newest state per cell, and counts page edits above a mark per (minute, shard), as the Redis mirror
    does."""

    def __init__(self) -> None:
        self.states: dict[tuple[CellKey, str], CellState] = {}
        self.recent: dict[str, dict] = {}
        self.page_marks: dict[tuple[int, str], int] = {}
        self.pages: Counter[tuple[int, str, str]] = Counter()

    def publish(self, states: Sequence[CellState], changes: Sequence[ProcessedChange]) -> None:
        for state in states:
            key = (state.cell, state.shard)
            if key not in self.states or self.states[key].sequence < state.sequence:
                self.states[key] = state
        for edit in page_edits_of(changes):
            cell = (edit.minute, edit.shard)
            if cell not in self.page_marks or self.page_marks[cell] < edit.sequence:
                self.page_marks[cell] = edit.sequence
                self.pages[(edit.minute, edit.wiki, edit.title)] += 1
        for change in changes:
            self.recent[change.key] = change.doc

    def totals(self, scope: str = ledger.TOTAL) -> Counter[str]:
        return scope_totals(self.states.values(), scope)


def fake_stores() -> tuple[Stores, FakeEventStore, FakeLedger, FakeMirror, FakeDeadLetters]:
    events, counters, mirror, letters = FakeEventStore(), FakeLedger(), FakeMirror(), FakeDeadLetters()
    return Stores(events, letters, counters, mirror), events, counters, mirror, letters


class MemoryDeliveryLog:
    """The delivery counts of `kcl_app.redelivery.RedisDeliveryLog` in a dict (it survives a "process")."""

    def __init__(self) -> None:
        self.stored: dict[str, str] = {}

    def begin(self, shard: str, first_sequence: int) -> Delivery:
        delivery, begun = next_delivery(self.stored.get(shard), first_sequence)
        self.stored[shard] = f"{first_sequence}:{begun}"
        return delivery

    def end(self, shard: str) -> None:
        self.stored.pop(shard, None)


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
