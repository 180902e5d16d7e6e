"""Turning SSE events into Kinesis entries, and entries into PutRecords batches. Pure: no I/O."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from producer.filters import KEEP_ALL, ChangeFilter
from producer.progress import Gap, Mark

# PutRecords limits: 500 entries, 5 MiB per call (data + partition keys), 1 MiB per record.
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
MAX_PARTITION_KEY_CHARS = 256
MAX_DATA_BYTES = MAX_RECORD_BYTES - MAX_PARTITION_KEY_CHARS * 4
# Free-text fields that may be cut to make an oversized event fit; ids, titles and times are never touched.
CUTTABLE_FIELDS = ("log_params", "parsedcomment", "comment", "log_action_comment")
CUT_TO_CHARS = 2048


@dataclass(frozen=True, slots=True)
class Entry:
    """One Kinesis record: the event's JSON exactly as received, keyed by its page.

    `marks` are the stream positions the event proves and `gaps` the gaps found since the previous entry;
    both count towards the checkpoint only once the entry is in Kinesis.
    """

    data: bytes
    partition_key: str
    sse_id: str | None = None
    marks: tuple[Mark, ...] = ()
    gaps: tuple[Gap, ...] = ()

    @property
    def size(self) -> int:
        return len(self.data) + len(self.partition_key.encode("utf-8"))


class Rejected(Exception):
    """A frame that cannot become a Kinesis record; `reason` is short and stable, for counting."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def partition_key_for(raw: dict[str, object]) -> str:
    """The page (`wiki` + `title`): one page's changes land on one shard, in order.

    Keys longer than Kinesis' 256 characters are replaced by a digest of the same page, which keeps the
    per-page ordering. Events with no page fall back to their event id.
    """
    wiki, title = raw.get("wiki"), raw.get("title")
    if isinstance(wiki, str) and isinstance(title, str):
        key = f"{wiki}\t{title}"
    else:
        meta = raw.get("meta")
        meta_id = meta.get("id") if isinstance(meta, dict) else None
        key = str(meta_id) if meta_id else "unkeyed"
    if len(key) > MAX_PARTITION_KEY_CHARS:
        key = "sha1:" + hashlib.sha1(key.encode("utf-8")).hexdigest()
    return key


def is_canary(raw: dict[str, object]) -> bool:
    meta = raw.get("meta")
    return isinstance(meta, dict) and meta.get("domain") == "canary"


class Skipped(Exception):
    """A valid frame that is deliberately not sent: a canary, or a change the filter leaves out."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def to_entry(data: str, sse_id: str | None, keep: ChangeFilter = KEEP_ALL) -> Entry:
    """The Kinesis entry for one `data:` payload, exactly as received unless it is too large for one record.

    Raises `Rejected` for unusable input and `Skipped` for canaries and filtered-out changes.
    """
    return entry_for(parse_payload(data), data, sse_id, keep)


def parse_payload(data: str) -> dict[str, Any]:
    """The `data:` payload as a JSON object, or `Rejected`."""
    try:
        raw = json.loads(data)
    except json.JSONDecodeError as exc:
        raise Rejected("not_json") from exc
    if not isinstance(raw, dict):
        raise Rejected("not_an_object")
    return raw


def entry_for(
    raw: dict[str, Any],
    data: str,
    sse_id: str | None,
    keep: ChangeFilter = KEEP_ALL,
    marks: tuple[Mark, ...] = (),
    gaps: tuple[Gap, ...] = (),
) -> Entry:
    """`to_entry` for a payload already parsed into `raw`; raises `Skipped` for canaries and filtered changes."""
    if is_canary(raw):
        raise Skipped("canary")
    if not keep.keeps(raw):
        raise Skipped("filtered")
    encoded = data.encode("utf-8")
    if len(encoded) > MAX_DATA_BYTES:
        encoded = shrink(raw)
    return Entry(data=encoded, partition_key=partition_key_for(raw), sse_id=sse_id, marks=marks, gaps=gaps)


def shrink(raw: dict[str, Any]) -> bytes:
    """Cut the largest free-text fields until the event fits one Kinesis record, naming them in
    `wikitide_truncated`, so an oversized change (a huge `log_params`) is stored, never dropped."""
    event = dict(raw)
    cut: list[str] = []
    candidates = sorted(
        (name for name in CUTTABLE_FIELDS if name in event),
        key=lambda name: len(json.dumps(event[name], ensure_ascii=False)),
        reverse=True,
    )
    for name in candidates:
        text = event[name] if isinstance(event[name], str) else json.dumps(event[name], ensure_ascii=False)
        event[name] = text[:CUT_TO_CHARS]
        cut.append(name)
        event["wikitide_truncated"] = cut
        encoded = json.dumps(event, ensure_ascii=False).encode("utf-8")
        if len(encoded) <= MAX_DATA_BYTES:
            return encoded
    raise Rejected("oversized")


def split_rounds(entries: Sequence[Entry]) -> list[list[Entry]]:
    """Split entries into consecutive PutRecords calls holding at most one entry per page each.

    PutRecords does not promise order within a call, and a failed entry is retried after its call's
    successes; with one entry per page per call, a page's later change can never overtake an earlier one.
    Round k holds the (k+1)-th entry of every page, in arrival order.
    """
    rounds: list[list[Entry]] = []
    seen: dict[str, int] = {}
    for entry in entries:
        index = seen.get(entry.partition_key, 0)
        seen[entry.partition_key] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(entry)
    return rounds


@dataclass
class Batch:
    """Entries waiting for one PutRecords call, within its count and byte limits."""

    entries: list[Entry] = field(default_factory=list)
    size: int = 0

    def fits(self, entry: Entry) -> bool:
        return len(self.entries) < MAX_BATCH_RECORDS and self.size + entry.size <= MAX_BATCH_BYTES

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.size += entry.size

    def __len__(self) -> int:
        return len(self.entries)
