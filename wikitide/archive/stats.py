"""Counting an archive range: distinct events by wiki and type, with what was repeated, refused or unreadable.

An event is identified as the processor identifies it (`RecentChange.dedup_key`), so a repeat (the producer's
at-least-once writes, the forwarder's, a replay that was archived again) counts once; `records` counts lines.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from wikitide.archive.objects import Corrupt, Line
from wikitide.errors import InvalidChange
from wikitide.events import parse_change


@dataclass
class ArchiveStats:
    records: int = 0
    distinct: int = 0
    repeats: int = 0
    without_envelope: int = 0
    by_wiki_type: Counter[tuple[str, str]] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)
    corrupt: list[Corrupt] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        by_wiki: dict[str, dict[str, int]] = {}
        for (wiki, kind), count in sorted(self.by_wiki_type.items()):
            by_wiki.setdefault(wiki, {})[kind] = count
        return {
            "records": self.records, "distinct_events": self.distinct, "repeats": self.repeats,
            "without_envelope": self.without_envelope, "invalid": dict(sorted(self.invalid.items())),
            "corrupt_objects": [{"key": c.key, "reason": c.reason} for c in self.corrupt], "by_wiki": by_wiki,
        }

    def table(self) -> str:
        rows = [f"{'wiki':<24} {'type':<12} {'events':>8}"]
        rows += [f"{wiki:<24} {kind:<12} {n:>8}" for (wiki, kind), n in sorted(self.by_wiki_type.items())]
        rows.append(f"{self.records} records, {self.distinct} distinct events, {self.repeats} repeats, "
                    f"{sum(self.invalid.values())} invalid, {self.without_envelope} without envelope, "
                    f"{len(self.corrupt)} corrupt objects skipped")
        rows += [f"CORRUPT {c.key}: {c.reason}" for c in self.corrupt]
        return "\n".join(rows)


def count(lines: Iterable[Line], stats: ArchiveStats | None = None) -> ArchiveStats:
    """Add `lines` to `stats` (a new one by default); invalid events are counted by the processor's reason."""
    stats = stats or ArchiveStats()
    seen: set[str] = set()
    for line in lines:
        stats.records += 1
        if not line.opened.is_envelope:
            stats.without_envelope += 1
        try:
            change = parse_change(line.opened.event)
        except InvalidChange as exc:
            stats.invalid[exc.reason] += 1
            continue
        if change.dedup_key in seen:
            stats.repeats += 1
            continue
        seen.add(change.dedup_key)
        stats.distinct += 1
        stats.by_wiki_type[(change.wiki, change.type_bucket)] += 1
    return stats
