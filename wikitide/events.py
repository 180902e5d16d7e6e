"""The recentchange event, parsed once into a frozen value, and its de-duplication key.

Everything downstream reads `RecentChange`, never the raw JSON keys. One strict parse (`parse_change`) decodes and
validates in one pass with msgspec, against the published schema `mediawiki/recentchange` (1.0.x and current):
every property the schema names must have the schema's JSON type (no numeric strings, no floats or booleans for
integers), ids, lengths and revisions are integers in [0, 2^53), `namespace` and `timestamp` in (-2^53, 2^53).
On top of the schema, what processing needs: `meta.id`, `meta.dt`, `type` and `wiki` are required, an `edit` or
`new` needs a `title`, a title is at most 255 bytes of UTF-8 (MediaWiki's own limit, as for user names), the names
that become keys are at most 255 characters, nesting is at most `MAX_DEPTH` deep, and `meta.dt` is at most
`MAX_FUTURE_MS` after the record's arrival in Kinesis.

Properties the schema does not name are accepted and ignored: the schema says `additionalProperties: true`, and the
stream adds fields over time (`title_url`, `notify_url` since 2023). Both the current schema and the 2018 one
(`meta.schema_uri`, no `meta.stream`, no `$schema`) parse; the schema's own required `$schema` and `meta.stream`
are therefore not required. Every rejection is an `InvalidChange` whose `reason` is one of `REASONS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import msgspec

from wikitide.errors import InvalidChange
from wikitide.limits import MAX_DEPTH, MAX_SAFE_INTEGER, MAX_TITLE_BYTES

REVISION_TYPES = frozenset({"edit", "new"})
KNOWN_TYPES = ("edit", "new", "log", "categorize")
CANARY_DOMAIN = "canary"

NAME_MAX_CHARS = 255  # wiki, type, meta.id, hosts: they end up in DynamoDB keys (2,048 bytes at most)
MAX_FUTURE_MS = 10 * 60 * 1000
EARLIEST_DT = datetime(2001, 1, 1, tzinfo=UTC)  # before Wikipedia: a broken clock, not a change

# The stable reasons a record is rejected for (the dead-letter table's `reason`, the `wt:rejected` fields).
REASONS = {
    "not_json": "not UTF-8 JSON text",
    "not_an_object": "JSON, but not an object",
    "too_deep": f"arrays or objects nested more than {MAX_DEPTH} deep",
    "missing_field": "a required field is absent or empty",
    "wrong_type": "a field has another JSON type than the schema's (a numeric string for an integer, ...)",
    "out_of_range": "an integer outside the schema's range (negative id, length or revision, or >= 2^53), "
    "or meta.dt before 2001",
    "too_long": "a title or user name over 255 bytes of UTF-8, or a name over 255 characters",
    "bad_field": "a value of the right type that is still unusable (meta.dt not an RFC 3339 date-time)",
    "future_dt": "meta.dt more than 10 minutes after the record reached Kinesis",
}

Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INTEGER)]
SignedCount = Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=NAME_MAX_CHARS)]
OptionalName = Annotated[str, msgspec.Meta(max_length=NAME_MAX_CHARS)]
UNSET = msgspec.UNSET
Unset = msgspec.UnsetType


class _Meta(msgspec.Struct):
    id: Name
    dt: Annotated[datetime, msgspec.Meta(tz=None)]
    domain: OptionalName | Unset = UNSET
    stream: OptionalName | Unset = UNSET
    uri: Annotated[str, msgspec.Meta(max_length=8192)] | Unset = UNSET
    request_id: str | Unset = UNSET


class _Pair(msgspec.Struct):
    """`length` and `revision`: old and new, each an integer or null."""

    old: Count | None = None
    new: Count | None = None


class _Change(msgspec.Struct, rename={"schema": "$schema"}):
    # Absent and null differ: the schema allows null only where it says so ([integer, "null"]).
    meta: _Meta
    type: Name
    wiki: Name
    schema: str | Unset = UNSET
    id: Count | None = None
    title: str | Unset = UNSET
    namespace: SignedCount | Unset = UNSET
    comment: str | Unset = UNSET
    parsedcomment: str | Unset = UNSET
    timestamp: SignedCount | Unset = UNSET
    user: str | Unset = UNSET
    bot: bool = False
    server_url: OptionalName | Unset = UNSET
    server_name: OptionalName | Unset = UNSET
    server_script_path: OptionalName | Unset = UNSET
    minor: bool | Unset = UNSET
    patrolled: bool | Unset = UNSET
    length: _Pair | Unset = UNSET
    revision: _Pair | Unset = UNSET
    log_id: Count | None = None
    log_type: str | None = None
    log_action: str | Unset = UNSET
    # [array, object, string]: checked by its first byte, never built (it can be large and deep).
    log_params: msgspec.Raw | Unset = UNSET
    log_action_comment: str | None = None


_DECODER = msgspec.json.Decoder(_Change)
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_INNERMOST = re.compile(rb"\[\]|\{\}")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


@dataclass(frozen=True, slots=True)
class RecentChange:
    event_id: str
    dt: datetime
    type: str
    wiki: str
    title: str
    domain: str
    stream: str
    rc_id: int | None = None
    namespace: int | None = None
    user: str | None = None
    is_bot: bool = False
    is_minor: bool | None = None
    is_patrolled: bool | None = None
    comment: str = ""
    server_name: str = ""
    server_url: str = ""
    length_old: int | None = None
    length_new: int | None = None
    rev_old: int | None = None
    rev_new: int | None = None

    @property
    def is_canary(self) -> bool:
        return self.domain == CANARY_DOMAIN

    @property
    def is_revision(self) -> bool:
        """An `edit` or `new` that carries a revision id: the events that count as page edits."""
        return self.type in REVISION_TYPES and self.rev_new is not None

    @property
    def type_bucket(self) -> str:
        """The type as the API reports it: unknown types such as Flow's `"142"` become `other`."""
        return self.type if self.type in KNOWN_TYPES else "other"

    @property
    def dedup_key(self) -> str:
        """Identity of the change across wikis: the revision for edits, else the recent-change id, else meta.id."""
        if self.is_revision:
            return revision_key(self.wiki, self.rev_new)  # type: ignore[arg-type]
        if self.rc_id is not None:
            return f"{self.wiki}#rc#{self.rc_id}"
        return f"meta#{self.event_id}"

    @property
    def byte_delta(self) -> int | None:
        """`length.new - length.old` for edits and page creations (a missing old length counts as 0)."""
        if self.type not in REVISION_TYPES or self.length_new is None:
            return None
        return self.length_new - (self.length_old or 0)

    @property
    def page_key(self) -> str:
        """The page (wiki + title): the Kinesis partition key, so one page's changes stay in order."""
        return page_key(self.wiki, self.title)


def page_key(wiki: str, title: str) -> str:
    """A page across wikis: a tab, which neither a wiki name nor a MediaWiki title can hold, between the two."""
    return f"{wiki}\t{title}"


def revision_key(wiki: str, rev_id: int) -> str:
    return f"{wiki}#rev#{rev_id}"


def is_revision_key(key: str) -> bool:
    """Whether a de-duplication key is a revision's: a stored change that counts as one edit of its page."""
    return "#rev#" in key


def parse_change(payload: bytes | str, arrival_ms: int | None = None) -> RecentChange:
    """Parse and validate one `data:` payload; `arrival_ms` (the Kinesis arrival time) bounds `meta.dt`.

    Raises `InvalidChange` (reason in `REASONS`, detail naming the field) for anything unusable; never anything
    else, whatever the input (a nesting 100,000 deep included).
    """
    data = payload if isinstance(payload, bytes) else _utf8(payload)
    if not data.isascii():
        try:
            data.decode("utf-8")  # msgspec checks the strings it keeps; the rest must be UTF-8 too
        except UnicodeDecodeError as exc:
            raise InvalidChange("not_json", f"invalid UTF-8 at byte {exc.start}") from exc
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH:
        _check_depth(data)
    try:
        raw = _DECODER.decode(data)
    except msgspec.ValidationError as exc:
        raise InvalidChange(_reason_of(str(exc)), str(exc)[:200]) from exc
    except msgspec.DecodeError as exc:
        raise InvalidChange("not_json", str(exc)[:200]) from exc
    except RecursionError as exc:  # unreachable after _check_depth; kept so the promise holds regardless
        raise InvalidChange("too_deep", "nesting exceeded the interpreter's limit") from exc
    return _change_of(raw, arrival_ms)


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidChange("not_json", f"unpaired surrogate at character {exc.start}") from exc


def _check_depth(data: bytes) -> None:
    """Raise `too_deep` when arrays and objects nest more than `MAX_DEPTH` deep.

    Brackets inside strings are dropped, then each round removes the innermost empty pairs (one level per
    round): whatever is left after `MAX_DEPTH` rounds is nested deeper (or unbalanced, which is not JSON either).
    All in C-speed passes, so a 1 MB `[[[...]]]` costs milliseconds and no recursion.
    """
    brackets = _STRINGS.sub(b"", data).translate(None, _NOT_BRACKETS)
    for _ in range(MAX_DEPTH):
        if not brackets:
            return
        brackets = _INNERMOST.sub(b"", brackets)
    if brackets:
        raise InvalidChange("too_deep", f"nested more than {MAX_DEPTH} deep")


def _reason_of(message: str) -> str:
    """msgspec's validation message (stable within its pinned version) as one of `REASONS`."""
    if message.startswith("Object missing required field") or "of length >= 1" in message:
        return "missing_field"
    if message.startswith("Expected `object`, got") and " - at " not in message:
        return "not_an_object"
    if "of length <=" in message:
        return "too_long"
    if message.startswith("Expected `int` >=") or message.startswith("Expected `int` <="):
        return "out_of_range"
    if message.startswith("Expected"):
        return "wrong_type"
    return "bad_field"


def _change_of(raw: _Change, arrival_ms: int | None) -> RecentChange:
    meta = raw.meta
    dt = meta.dt
    if dt.tzinfo is not UTC:  # msgspec gives `Z` as UTC itself
        dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    if dt < EARLIEST_DT:
        raise InvalidChange("out_of_range", f"meta.dt {dt:%Y-%m-%dT%H:%M:%SZ} is before 2001")
    if arrival_ms is not None:
        ahead_ms = dt.timestamp() * 1000 - arrival_ms
        if ahead_ms > MAX_FUTURE_MS:
            detail = f"meta.dt {dt:%Y-%m-%dT%H:%M:%SZ} is {ahead_ms / 1000:.0f} s after arrival"
            raise InvalidChange("future_dt", detail)
    title = raw.title
    if title is UNSET:
        if raw.type in REVISION_TYPES:
            raise InvalidChange("missing_field", "title")
        title = ""
    elif len(title) > MAX_TITLE_BYTES // 4 and len(title.encode("utf-8")) > MAX_TITLE_BYTES:
        raise InvalidChange("too_long", f"title of {len(title.encode('utf-8'))} bytes")
    user = raw.user or None  # absent, or empty: a suppressed user
    if user is not None and len(user) > MAX_TITLE_BYTES // 4 and len(user.encode("utf-8")) > MAX_TITLE_BYTES:
        raise InvalidChange("too_long", f"user of {len(user.encode('utf-8'))} bytes")
    log_params = raw.log_params
    if log_params is not UNSET and bytes(log_params)[:1] not in (b"[", b"{", b'"'):
        raise InvalidChange("wrong_type", "Expected `array | object | str` - at `$.log_params`")
    length = raw.length
    revision = raw.revision
    server_name = raw.server_name or ""
    return RecentChange(
        event_id=meta.id,
        dt=dt,
        type=raw.type,
        wiki=raw.wiki,
        title=title,
        domain=meta.domain or server_name,
        stream=meta.stream or "mediawiki.recentchange",
        rc_id=raw.id,
        namespace=None if raw.namespace is UNSET else raw.namespace,
        user=user,
        is_bot=raw.bot,
        is_minor=None if raw.minor is UNSET else raw.minor,
        is_patrolled=None if raw.patrolled is UNSET else raw.patrolled,
        comment=raw.comment or "",
        server_name=server_name,
        server_url=raw.server_url or "",
        length_old=None if length is UNSET else length.old,
        length_new=None if length is UNSET else length.new,
        rev_old=None if revision is UNSET else revision.old,
        rev_new=None if revision is UNSET else revision.new,
    )
