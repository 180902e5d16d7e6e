"""DynamoDB adapter of the counter ledger: one item per (minute, scope, shard) cell, laid out as
`wikitide.cells` says (the API reads the same items).

Shards never write the same item. The busiest partition key is the overall total (`*`): one write per
batch per shard, about 4 per shard per second at the local polling interval, far below DynamoDB's
1,000 writes/s per key up to a few hundred shards. Pages have no cells
(see `kcl_app/ledger.py`): a hot page costs nothing here.
The write is an optimistic update: `ADD` the newer contributions and move the mark, on the condition that
the mark is still the one read; a lost race (or a retried write that had in fact landed) re-reads and adds
only what is left.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from kcl_app import ledger
from kcl_app.dynamo_store import GET_LIMIT, POLICY, WritePool, is_condition_failure
from kcl_app.ledger import CellKey, CellState, Contribution
from wikitide import aws, retry
from wikitide import cells as layout
from wikitide.errors import DependencyUnavailable

logger = logging.getLogger(__name__)

RACE_ATTEMPTS = 5


def item_key(cell: CellKey, shard: str) -> dict[str, Any]:
    return layout.item_key(cell.scope, cell.minute, shard)


def state_of(item: dict[str, Any]) -> CellState:
    minute, shard = layout.split_sort_key(item["sk"]["S"])
    return CellState(CellKey(minute, item["pk"]["S"]), shard, int(item[layout.MARK]["S"]), layout.counters(item))


class DynamoCounterLedger:
    def __init__(
        self,
        client: Any,
        table: str,
        *,
        pool: WritePool | None = None,
        attempts: int | None = None,
        fast_retries: bool = False,
    ) -> None:
        self._client = client
        self._table = table
        self._pool = pool or WritePool()
        self._attempts = attempts
        self._fast = fast_retries
        # The newest minute this process stored as the latest: the stored one only moves forward, so a batch whose
        # newest minute is not past it needs no write (at the live rate a minute spans ~120 batches of a shard;
        # this was one of the 2.53 write requests per event every 8 events). Set after a successful write; a race
        # between threads can only lower it, which costs a write, never skips one that was needed.
        self._latest_stored: int | None = None

    def apply(self, shard: str, contributions: Sequence[Contribution]) -> list[CellState]:
        cells = ledger.group(contributions)
        current = self._read(shard, list(cells))
        states = self._pool.map(lambda cell: self._apply_cell(shard, cell, cells[cell], current.get(cell)), list(cells))
        newest = max((cell.minute for cell in cells if cell.scope == ledger.TOTAL), default=None)
        if newest is not None and (self._latest_stored is None or newest > self._latest_stored):
            self._advance_latest(newest)
            self._latest_stored = newest
        return states

    def _advance_latest(self, minute: int) -> None:
        def attempt() -> None:
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=layout.LATEST_KEY,
                    UpdateExpression="SET #minute = :minute",
                    ConditionExpression="attribute_not_exists(#minute) OR #minute < :minute",
                    ExpressionAttributeNames={"#minute": layout.LATEST_MINUTE},
                    ExpressionAttributeValues={":minute": {"N": str(minute)}},
                )
            except ClientError as exc:
                if not is_condition_failure(exc):  # a newer minute is already there
                    raise

        aws.call(
            attempt, what=f"latest minute in {self._table}", policy=POLICY, attempts=self._attempts, fast=self._fast
        )

    def _apply_cell(
        self, shard: str, cell: CellKey, contributions: list[Contribution], state: CellState | None
    ) -> CellState:
        for _ in range(RACE_ATTEMPTS):
            delta = ledger.delta_after(cell, contributions, state.sequence if state else None)
            if delta is None:
                assert state is not None  # nothing is left to add only when something was counted
                return state
            written = self._write(shard, delta)
            if written is not None:
                return written
            state = self._read(shard, [cell]).get(cell)
        raise DependencyUnavailable(f"counter cell {cell} of {shard}: lost {RACE_ATTEMPTS} races in a row")

    def _write(self, shard: str, delta: ledger.CellDelta) -> CellState | None:
        """The new state, or None when another writer moved the mark first."""
        names = {f"#f{i}": name for i, name in enumerate(delta.fields)}
        names.update({"#seq": layout.MARK, "#expires": layout.EXPIRES})
        values: dict[str, Any] = {f":f{i}": {"N": str(v)} for i, v in enumerate(delta.fields.values())}
        values[":seq"] = {"S": str(delta.sequence)}
        values[":expires"] = {"N": str(layout.expires_at(delta.cell.minute))}
        adds = ", ".join(f"#f{i} :f{i}" for i in range(len(delta.fields)))
        sets = "#seq = :seq, #expires = :expires"
        condition = "attribute_not_exists(#seq)"
        if delta.after is not None:
            condition = "#seq = :after"
            values[":after"] = {"S": str(delta.after)}

        def attempt() -> CellState | None:
            try:
                response = self._client.update_item(
                    TableName=self._table,
                    Key=item_key(delta.cell, shard),
                    UpdateExpression=f"ADD {adds} SET {sets}",
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                )
            except ClientError as exc:
                if is_condition_failure(exc):
                    return None
                raise
            return state_of(response["Attributes"])

        return aws.call(
            attempt, what=f"count in {self._table}", policy=POLICY, attempts=self._attempts, fast=self._fast
        )

    def _read(self, shard: str, cells: list[CellKey]) -> dict[CellKey, CellState]:
        found: dict[CellKey, CellState] = {}
        for start in range(0, len(cells), GET_LIMIT):
            chunk = [item_key(c, shard) for c in cells[start : start + GET_LIMIT]]
            pending: dict[str, Any] = {self._table: {"Keys": chunk, "ConsistentRead": True}}

            def attempt() -> None:
                nonlocal pending
                response = self._client.batch_get_item(RequestItems=pending)
                for item in response.get("Responses", {}).get(self._table, []):
                    if layout.MARK not in item:
                        # Never in DynamoDB (an update is atomic); moto can show an update half applied.
                        raise aws.Retryable("a counter cell without its mark")
                    state = state_of(item)
                    found[state.cell] = state
                left = response.get("UnprocessedKeys") or {}
                if left:
                    pending = left
                    raise aws.Retryable(f"{len(left[self._table]['Keys'])} unprocessed keys")

            aws.call(attempt, what=f"read of {self._table}", policy=POLICY, attempts=self._attempts, fast=self._fast)
        return found

    def scan(self) -> list[CellState]:
        """Every cell (the table's TTL keeps about a day of them), for a rebuild of the read model."""
        def attempt() -> list[CellState]:
            paginator = self._client.get_paginator("scan")
            pages = paginator.paginate(TableName=self._table, ConsistentRead=True)
            return [state_of(item) for page in pages for item in page.get("Items", []) if layout.MARK in item]

        return aws.call(
            attempt, what=f"scan of {self._table}", policy=retry.PROCESSOR_REBUILD_SCAN, attempts=self._attempts,
            fast=self._fast,
        )
