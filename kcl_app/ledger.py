"""Exactly-once counter arithmetic over an at-least-once stream. Pure: no I/O.

Every counter lives in one cell per (minute, scope, shard): the per-minute totals (`*`), one wiki (`w:<wiki>`)
or the rejected records (`rejected`), spelled in `wikitide.cells`. A cell
remembers the sequence number of the last record it counted. Records of one shard arrive in sequence order, so a
record whose sequence number is not above the cell's mark was already counted; a redelivered batch, a zombie
worker's late write, or a second worker after a lease change adds nothing. Cells of different shards never share
a mark, so resharding needs no coordination: the reader sums a scope's cells over shards.

A cell's state (mark and absolute values) only moves forward, which is what lets the Redis mirror merge
states in any order and any number of times (see `kcl_app/redis_mirror.py`).

Pages have no cells: the events table already holds one item per distinct change, written by the record that
claimed it, so a page's edits of a minute are its claimed revisions of that minute (a `PageEdit` each). The Redis
mirror counts them with a mark per (minute, shard) of its own, under the same rule: a shard's edits arrive in
sequence order, so an edit at or below the mark was counted. That saves DynamoDB one conditional write per page
and batch, nearly one per event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from wikitide.cells import REJECTED as REJECTED
from wikitide.cells import TOTAL as TOTAL
from wikitide.cells import wiki_scope as wiki_scope


@dataclass(frozen=True, slots=True, order=True)
class CellKey:
    minute: int
    scope: str


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one record adds to one cell."""

    cell: CellKey
    sequence: int
    fields: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class PageEdit:
    """One claimed revision (an `edit` or `new`): one edit of its page in its event-time minute."""

    minute: int
    shard: str
    sequence: int
    wiki: str
    title: str


@dataclass(frozen=True, slots=True)
class CellState:
    """A cell's absolute values after counting every record of `shard` up to `sequence`."""

    cell: CellKey
    shard: str
    sequence: int
    values: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class CellDelta:
    """What still has to be added to a cell whose mark is `after`: the sum of the newer contributions."""

    cell: CellKey
    after: int | None
    sequence: int
    fields: Mapping[str, int]


def group(contributions: Iterable[Contribution]) -> dict[CellKey, list[Contribution]]:
    cells: dict[CellKey, list[Contribution]] = defaultdict(list)
    for contribution in contributions:
        cells[contribution.cell].append(contribution)
    return dict(cells)


def delta_after(cell: CellKey, contributions: Iterable[Contribution], mark: int | None) -> CellDelta | None:
    """The sum of the contributions above `mark`, or None when the cell already counted all of them."""
    fields: dict[str, int] = defaultdict(int)
    newest = mark
    for contribution in contributions:
        if mark is not None and contribution.sequence <= mark:
            continue
        for name, value in contribution.fields.items():
            fields[name] += value
        if newest is None or contribution.sequence > newest:
            newest = contribution.sequence
    if newest is None or newest == mark:
        return None
    return CellDelta(cell=cell, after=mark, sequence=newest, fields=dict(fields))
