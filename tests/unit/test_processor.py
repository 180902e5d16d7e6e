"""The record processor at the KCL boundary, with the fakes and a simulated daemon that redelivers from the
last checkpoint: nothing escapes `process_records`, a poison record is isolated, an outage never gives up a
good record, and a batch that keeps killing its process is worked through."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest

from kcl_app.bootstrap import BatchHandler
from kcl_app.handler import PROCESSING_ERROR
from kcl_app.processor import EXIT_REDELIVER, ChangeProcessor
from kcl_app.redelivery import DEATHS_BEFORE_SPLIT, Delivery, plan
from tests.conftest import RECENTCHANGE
from tests.unit.fakes import MemoryDeliveryLog, ProcessDied, fake_stores

SHARD = "shardId-000000000001"
ARRIVAL_MS = 1_630_070_500_000


@dataclass
class Record:
    binary_data: bytes
    sequence_number: str
    sub_sequence_number: int = 0
    timestamp_millis: int = ARRIVAL_MS


@dataclass
class Checkpointer:
    sequences: list[str] = field(default_factory=list)

    def checkpoint(self, sequence_number: str | None = None, sub_sequence: int | None = None) -> None:
        if sequence_number is not None:
            self.sequences.append(sequence_number)


@dataclass
class Input:
    records: list[Record]
    checkpointer: Checkpointer
    millis_behind_latest: int = 0


@dataclass
class Initialize:
    shard_id: str = SHARD
    sequence_number: str = "TRIM_HORIZON"


def _recorded(count: int) -> list[tuple[str, bytes]]:
    path = RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson"
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:count]
    return [(_key(json.loads(line)), line.encode()) for line in lines]


def _key(event: dict) -> str:
    """The de-duplication key, computed from the raw event (not with the project's parser)."""
    revision = event.get("revision") or {}
    if event["type"] in ("edit", "new") and revision.get("new") is not None:
        return f"{event['wiki']}#rev#{revision['new']}"
    return f"{event['wiki']}#rc#{event['id']}" if event.get("id") is not None else f"meta#{event['meta']['id']}"


def _records(payloads: list[bytes]) -> list[Record]:
    return [Record(p, str(10_000 + i)) for i, p in enumerate(payloads)]


class Daemon:
    """Delivers a shard from its last checkpoint, `max_records` at a time, restarting the processor after an
    exit or a death, as the MultiLangDaemon and its supervisor do."""

    def __init__(self, records: list[Record], handle: BatchHandler, max_records: int = 100) -> None:
        self.records, self.handle, self.max_records = records, handle, max_records
        self.deliveries = MemoryDeliveryLog()
        self.checkpointer = Checkpointer()
        self.delivered = 0
        self.exits: list[int] = []
        self.deaths = 0

    def position(self) -> int:
        done = self.checkpointer.sequences[-1] if self.checkpointer.sequences else None
        return 0 if done is None else next(i for i, r in enumerate(self.records) if r.sequence_number == done) + 1

    def run(self, limit: int = 200) -> None:
        while self.position() < len(self.records):
            assert self.delivered < limit, "the shard is stuck"
            self.delivered += 1
            processor = ChangeProcessor(self.handle, deliveries=self.deliveries)
            processor.initialize(Initialize())
            start = self.position()
            try:
                processor.process_records(Input(self.records[start : start + self.max_records], self.checkpointer))
            except SystemExit as exc:
                self.exits.append(int(exc.code))  # type: ignore[arg-type]
            except ProcessDied:
                self.deaths += 1


def test_a_refused_record_is_isolated_and_the_rest_counted_once() -> None:
    recorded = _recorded(300)
    stores, events, counters, mirror, letters = fake_stores()
    poison = {recorded[37][0], recorded[211][0]}
    events.refused.add(recorded[37][0])
    events.broken.add(recorded[211][0])
    daemon = Daemon(_records([p for _, p in recorded]), BatchHandler(stores))
    daemon.run()
    assert (daemon.delivered, daemon.exits) == (3, [])
    assert set(events.items) == {key for key, _ in recorded} - poison
    assert {p: letter.reason for p, letter in letters.letters.items()} == {
        f"{SHARD}#{10_037}": PROCESSING_ERROR, f"{SHARD}#{10_211}": PROCESSING_ERROR,
    }
    assert "ValidationException" in letters.letters[f"{SHARD}#{10_037}"].detail
    assert counters.totals()["events"] == 298 == mirror.totals()["events"]
    assert counters.totals("rejected") == {PROCESSING_ERROR: 2}


def test_an_outage_exits_for_redelivery_and_never_gives_up_a_good_record() -> None:
    recorded = _recorded(200)
    stores, events, counters, _, letters = fake_stores()
    events.fail_next = 12  # twelve deliveries in a row find DynamoDB down
    daemon = Daemon(_records([p for _, p in recorded]), BatchHandler(stores))
    daemon.run()
    assert daemon.exits == [EXIT_REDELIVER] * 12
    assert not letters.letters
    assert counters.totals()["events"] == 200


def test_a_batch_that_kills_its_process_is_split_until_the_record_is_given_up() -> None:
    recorded = _recorded(300)
    stores, events, counters, mirror, letters = fake_stores()
    events.fatal.add(recorded[150][0])
    daemon = Daemon(_records([p for _, p in recorded]), BatchHandler(stores))
    daemon.run()
    assert {p: letter.reason for p, letter in letters.letters.items()} == {f"{SHARD}#{10_150}": PROCESSING_ERROR}
    assert set(events.items) == {key for key, _ in recorded} - {recorded[150][0]}
    assert counters.totals()["events"] == 299 == mirror.totals()["events"]
    # Three deaths before any split, then one per halving of the 100-record batch, then the give-up.
    assert DEATHS_BEFORE_SPLIT <= daemon.deaths <= DEATHS_BEFORE_SPLIT + 8
    assert daemon.delivered == daemon.deaths + 3


def test_anything_unforeseen_at_the_boundary_exits_for_redelivery(caplog: pytest.LogCaptureFixture) -> None:
    stores, *_ = fake_stores()
    processor = ChangeProcessor(BatchHandler(stores))
    processor.initialize(Initialize())
    broken: Any = Input([Record(b"{}", "not a number")], Checkpointer())
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as caught:
        processor.process_records(broken)
    assert caught.value.code == EXIT_REDELIVER
    assert "Traceback" in caplog.text and "not a number" in caplog.text
    assert not broken.checkpointer.sequences


@pytest.mark.parametrize(
    ("size", "deaths", "same_start", "expected"),
    [
        (100, 0, False, (False, 100)),
        (100, DEATHS_BEFORE_SPLIT - 1, True, (False, 100)),
        (100, DEATHS_BEFORE_SPLIT, True, (False, 50)),
        (100, DEATHS_BEFORE_SPLIT + 5, True, (False, 1)),  # runs of 50, 25, 12, 6, 3, 1
        (100, DEATHS_BEFORE_SPLIT + 6, True, (True, 1)),
        (100, DEATHS_BEFORE_SPLIT + 6, False, (False, 1)),
        (1, DEATHS_BEFORE_SPLIT, True, (True, 1)),
    ],
)
def test_the_plan_halves_the_run_with_each_death(size: int, deaths: int, same_start: bool, expected: tuple) -> None:
    todo = plan(size, Delivery(deaths, same_start))
    assert (todo.give_up_first, todo.run) == expected
