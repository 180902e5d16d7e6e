"""Turning SSE events into Kinesis entries, and entries into PutRecords batches. Pure: no I/O.

A payload is untrusted: it is decoded by msgspec (which checks UTF-8 and refuses NaN, lone surrogates and
numbers out of range) and refused past `MAX_DEPTH` levels of nesting. An event larger than a Kinesis record is
cut to fit (`shrink`); one that cannot be cut enough, or cannot be decoded, is `Rejected` with a short reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from producer.filters import KEEP_ALL, ChangeFilter
from producer.progress import Gap, Mark
from wikitide import envelope
from wikitide.limits import MAX_DEPTH

# PutRecords limits: 500 entries, 5 MiB per call (data + partition keys), 1 MiB per record.
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
MAX_PARTITION_KEY_CHARS = 256
# The record (`wikitide.envelope`: the event, its SSE id and receive time) is what must fit.
MAX_DATA_BYTES = MAX_RECORD_BYTES - MAX_PARTITION_KEY_CHARS * 4
# What the processor needs to de-duplicate, count and window a change: never cut. Every other field (comments,
# log_params, tags, unknown fields, meta.uri...) may be, largest first.
KEPT_FIELDS = frozenset({
    "$schema", "meta", "id", "type", "namespace", "title", "timestamp", "user", "bot", "minor", "patrolled",
    "length", "revision", "server_url", "server_name", "server_script_path", "wiki", "log_id", "log_type",
    "log_action",
})
KEPT_META_FIELDS = frozenset({"id", "dt", "domain", "stream", "topic", "partition", "offset"})
TRUNCATED_FIELD = "wikitide_truncated"
CUT_TO_CHARS = 2048

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Entry:
    """One Kinesis record, keyed by its page: `data` is the envelope (`wikitide.envelope`) holding the event's JSON
    exactly as received (or cut to fit, below), its SSE id and the time the producer read it.

    `marks` are the stream positions the event proves and `gaps` the gaps found since the previous entry;
    both count towards the checkpoint only once the entry is in Kinesis.
    """

    data: bytes
    partition_key: str
    sse_id: str | None = None
    marks: tuple[Mark, ...] = ()
    gaps: tuple[Gap, ...] = ()
    truncated: tuple[str, ...] = ()  # the fields `shrink` cut, as named in `wikitide_truncated`

    @property
    def size(self) -> int:
        return len(self.data) + len(self.partition_key.encode("utf-8"))

    @property
    def rejected(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Passage:
    """A frame read but not sent (skipped, or rejected for `rejected`): it still moves the position, in arrival
    order, so a restart resumes after it rather than reading it again."""

    sse_id: str | None
    marks: tuple[Mark, ...] = ()
    gaps: tuple[Gap, ...] = ()
    rejected: str | None = None

    @property
    def truncated(self) -> tuple[str, ...]:
        return ()


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
        key = "sha1:" + hashlib.sha1(key.encode("utf-8"), usedforsecurity=False).hexdigest()
    return key


def is_canary(raw: dict[str, object]) -> bool:
    meta = raw.get("meta")
    return isinstance(meta, dict) and meta.get("domain") == "canary"


class Skipped(Exception):
    """A valid frame that is deliberately not sent: a canary, or a change the filter leaves out."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def to_entry(
    data: bytes | str, sse_id: str | None, keep: ChangeFilter = KEEP_ALL, received_ms: int | None = None
) -> Entry:
    """The Kinesis entry for one `data:` payload, exactly as received unless it is too large for one record.

    Raises `Rejected` for unusable input and `Skipped` for canaries and filtered-out changes.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return entry_for(parse_payload(payload), payload, sse_id, keep, received_ms=received_ms)


def parse_payload(data: bytes) -> dict[str, Any]:
    """The `data:` payload as a JSON object, or `Rejected` (`invalid_utf8`, `not_json`, `too_deep`, `not_an_object`)."""
    try:
        raw = _decode(data)
    except msgspec.DecodeError as exc:
        raise Rejected("not_json" if _is_utf8(data) else "invalid_utf8") from exc
    except RecursionError as exc:
        raise Rejected("too_deep") from exc
    if type(raw) is not dict:
        raise Rejected("not_an_object")
    # Counting brackets is cheap and bounds the depth from above: only a payload with many is walked.
    if data.count(b"{") + data.count(b"[") > MAX_DEPTH and _is_deeper(raw, MAX_DEPTH):
        raise Rejected("too_deep")
    return raw


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_deeper(value: object, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if isinstance(node, dict) else node:  # type: ignore[attr-defined]
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def entry_for(
    raw: dict[str, Any],
    data: bytes,
    sse_id: str | None,
    keep: ChangeFilter = KEEP_ALL,
    marks: tuple[Mark, ...] = (),
    gaps: tuple[Gap, ...] = (),
    received_ms: int | None = None,
) -> Entry:
    """`to_entry` for a payload already parsed into `raw`; raises `Skipped` for canaries and filtered changes,
    `Rejected("oversized")` for an event that cannot be cut to fit a record."""
    if is_canary(raw):
        raise Skipped("canary")
    if not keep.keeps(raw):
        raise Skipped("filtered")
    truncated: tuple[str, ...] = ()
    record = envelope.wrap(data, sse_id, received_ms)
    if len(record) > MAX_DATA_BYTES:
        data, truncated = shrink(raw, MAX_DATA_BYTES - envelope.overhead(sse_id, received_ms))
        record = envelope.wrap(data, sse_id, received_ms)
    return Entry(data=record, partition_key=partition_key_for(raw), sse_id=sse_id, marks=marks, gaps=gaps,
                 truncated=truncated)


def shrink(raw: dict[str, Any], limit: int = MAX_DATA_BYTES) -> tuple[bytes, tuple[str, ...]]:
    """The event cut to fit `limit` bytes (what a Kinesis record leaves it), and the fields cut (also named in
    `wikitide_truncated`).

    Fields outside `KEPT_FIELDS` (and `meta` fields outside `KEPT_META_FIELDS`) are cut largest first until the
    event fits: a string keeps its first `CUT_TO_CHARS` characters, any other value becomes the start of its JSON
    text. Each value is encoded once, so the work stays proportional to the event's size whatever its shape.
    Raises `Rejected("oversized")` when cutting every such field is not enough.
    """
    event = dict(raw)
    event.pop(TRUNCATED_FIELD, None)
    meta = event.get("meta")
    containers: list[tuple[dict[str, Any], str, frozenset[str]]] = [(event, "", KEPT_FIELDS)]
    if isinstance(meta, dict):
        event["meta"] = meta = dict(meta)
        containers.append((meta, "meta.", KEPT_META_FIELDS))
    candidates = sorted(
        ((len(_encode(value)), prefix + key, container, key)
         for container, prefix, kept in containers for key, value in container.items() if key not in kept),
        key=lambda candidate: candidate[0],
        reverse=True,
    )
    size = len(_encode(event))
    cut: list[str] = []
    for old_size, name, container, key in candidates:
        if size + len(_encode(cut)) + len(TRUNCATED_FIELD) + 4 <= limit:
            break
        value = container[key]
        short = value[:CUT_TO_CHARS] if isinstance(value, str) else _encode(value)[:CUT_TO_CHARS].decode(
            "utf-8", "ignore")
        new_size = len(_encode(short))
        if new_size >= old_size:
            continue
        container[key] = short
        size += new_size - old_size
        cut.append(name)
    event[TRUNCATED_FIELD] = cut
    encoded = _encode(event)
    if len(encoded) > limit:
        raise Rejected("oversized")
    return encoded, tuple(cut)


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
