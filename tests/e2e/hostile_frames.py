"""Hostile SSE frames made from a real recorded edit, each with the fate the pipeline owes it.

- `PRODUCER_REJECTS`: the producer cannot make a Kinesis record of it (not JSON, nested past any parser's
  limit, not an object); it is counted by the producer and never reaches Kinesis.
- `DEAD_LETTER`: valid JSON that breaks the event schema (numeric strings, non-ASCII digits, numbers past 2**53,
  a title past MediaWiki's 255 bytes, a date far after its arrival); the processor stores it in the dead-letter
  table and counts nothing else for it.
- `CUT_AND_COUNTED`: a valid edit larger than a Kinesis record, its bulk in `tags`; the producer cuts it to fit and
  it is counted like any edit.

Every hostile frame has a `meta.id` starting with `HOSTILE_PREFIX`, and none carries a Kafka position, so
they neither fill nor open a gap in the producer's position tracking.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

PRODUCER_REJECTS = "producer_rejects"
DEAD_LETTER = "dead_letter"
CUT_AND_COUNTED = "cut_and_counted"
HOSTILE_PREFIX = "wikitide-hostile-"
DEEP = 100_000


@dataclass(frozen=True)
class HostileFrame:
    name: str
    data: str
    fate: str
    event: dict[str, Any] | None = None  # the event as a plain reader sees it, for what it should add

    def encode(self) -> str:
        return f"event: message\ndata: {self.data}"


def _from(edit: dict[str, Any], name: str, rev: int) -> dict[str, Any]:
    event = copy.deepcopy(edit)
    event["meta"]["id"] = HOSTILE_PREFIX + name
    for position in ("topic", "partition", "offset"):
        event["meta"].pop(position, None)
    event["revision"] = {"old": rev - 1, "new": rev}
    event["id"] = rev
    return event


def hostile_frames(edit: dict[str, Any], newest_dt: str) -> list[HostileFrame]:
    """Frames built from `edit` (a recorded `edit` event); `newest_dt` is the recording's newest `meta.dt`,
    given to the counted edit so that every window, the one-minute one included, holds it."""
    base = 9_000_000_000  # revision ids far above the recording's, so no hostile frame repeats a real edit
    frames: list[HostileFrame] = [
        HostileFrame("not_json", "{this is not json", PRODUCER_REJECTS),
        HostileFrame("deep_array", "[" * DEEP + "]" * DEEP, PRODUCER_REJECTS),
        HostileFrame("deep_object", '{"a":' * DEEP + "1" + "}" * DEEP, PRODUCER_REJECTS),
        HostileFrame("array", json.dumps([edit]), PRODUCER_REJECTS),
    ]

    def dead(name: str, change: Any) -> None:
        event = _from(edit, name, base + len(frames))
        change(event)
        frames.append(HostileFrame(name, json.dumps(event, ensure_ascii=False), DEAD_LETTER, event))

    dead("namespace_numeric_string", lambda e: e.update(namespace="--1"))
    dead("revision_not_a_number", lambda e: e["revision"].update(new="abc"))
    dead("revision_superscript", lambda e: e["revision"].update(new="\u00b2"))
    dead("revision_past_2_53", lambda e: e["revision"].update(new=10**40))
    dead("length_negative", lambda e: e["length"].update(new=-5))
    dead("title_past_255_bytes", lambda e: e.update(title="Ж" * 200))
    dead("dated_2999", lambda e: e["meta"].update(dt="2999-01-01T00:00:00Z"))
    dead("type_not_a_string", lambda e: e.update(type=["edit"]))

    big = _from(edit, "tags_past_a_record", base + len(frames))
    big["meta"]["dt"] = newest_dt
    big["title"] = "Wikitide hostile input: a 1.2 MB edit"
    big["tags"] = [f"tag-{index:07d}-" + "x" * 100 for index in range(11_000)]
    frames.append(HostileFrame("tags_past_a_record", json.dumps(big), CUT_AND_COUNTED, big))
    return frames


def salted(frames: list[str], hostile: list[HostileFrame], every: int) -> list[str]:
    """The recorded frames with one hostile frame after every `every`-th, the rest at the end."""
    out: list[str] = []
    left = list(hostile)
    for index, frame in enumerate(frames):
        out.append(frame)
        if left and index % every == every - 1:
            out.append(left.pop(0).encode())
    out.extend(frame.encode() for frame in left)
    return out
