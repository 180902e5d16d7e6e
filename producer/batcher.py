"""Turning SSE events into Kinesis entries, and entries into PutRecords batches. Pure: no I/O."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

# PutRecords limits: 500 entries, 5 MiB per call (data + partition keys), 1 MiB per record.
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
MAX_PARTITION_KEY_CHARS = 256


@dataclass(frozen=True, slots=True)
class Entry:
    """One Kinesis record: the event's JSON exactly as received, keyed by its page."""

    data: bytes
    partition_key: str
    sse_id: str | None = None

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


def to_entry(data: str, sse_id: str | None) -> Entry | None:
    """The Kinesis entry for one `data:` payload, or None for a canary. Raises `Rejected` for unusable input."""
    try:
        raw = json.loads(data)
    except json.JSONDecodeError as exc:
        raise Rejected("not_json") from exc
    if not isinstance(raw, dict):
        raise Rejected("not_an_object")
    if is_canary(raw):
        return None
    encoded = data.encode("utf-8")
    if len(encoded) > MAX_RECORD_BYTES - MAX_PARTITION_KEY_CHARS:
        raise Rejected("oversized")
    return Entry(data=encoded, partition_key=partition_key_for(raw), sse_id=sse_id)


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
