"""Order checks over the processing journal (`kcl_app.progress`): what the fleet processed, in the order
Redis received it. A record's position is its first appearance (a redelivery appends it again later)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tests.fleet.traffic import Sent

Entry = tuple[str, str]  # (shard id, sequence number)


def first_positions(journal: Sequence[Entry]) -> dict[Entry, int]:
    first: dict[Entry, int] = {}
    for position, entry in enumerate(journal):
        first.setdefault(entry, position)
    return first


def page_order_violations(sent: Sequence[Sent], first: Mapping[Entry, int]) -> list[str]:
    """Each page's records (not the deliberate copies) must first be processed in the order they were sent;
    a record missing from the journal is a violation too."""
    last_by_page: dict[str, tuple[int, Sent]] = {}
    violations = []
    for record in sent:
        if record.is_copy:
            continue
        position = first.get((record.shard_id, record.sequence))
        if position is None:
            violations.append(f"{record.dedup_key} ({record.shard_id} {record.sequence}) not in the journal")
            continue
        previous = last_by_page.get(record.page)
        if previous is not None and previous[0] > position:
            violations.append(f"page {record.page!r}: {record.dedup_key} processed before {previous[1].dedup_key}")
        last_by_page[record.page] = (position, record)
    return violations


def children_before_parents(parents: Mapping[str, Sequence[str]], first: Mapping[Entry, int]) -> list[str]:
    """A child shard's first processed record must come after every processed record of its parents."""
    positions: dict[str, list[int]] = {}
    for (shard, _), position in first.items():
        positions.setdefault(shard, []).append(position)
    early = []
    for child, its_parents in parents.items():
        for parent in its_parents:
            if positions.get(child) and positions.get(parent) and min(positions[child]) < max(positions[parent]):
                early.append(f"{child} started before {parent} ended")
    return early
