"""The recentchange event, parsed once into a frozen value, and its de-duplication key.

Everything downstream reads `RecentChange`, never the raw JSON keys. Both the current schema
(`mediawiki/recentchange/1.x`) and the 2018 one (`meta.schema_uri`, no `meta.stream`) parse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from wikitide.errors import InvalidChange

REVISION_TYPES = frozenset({"edit", "new"})
KNOWN_TYPES = ("edit", "new", "log", "categorize")
CANARY_DOMAIN = "canary"


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
        return f"{self.wiki}\t{self.title}"


def revision_key(wiki: str, rev_id: int) -> str:
    return f"{wiki}#rev#{rev_id}"


def parse_change(payload: bytes | str) -> RecentChange:
    """Parse one `data:` payload. Raises `InvalidChange` with a short reason for anything unusable."""
    try:
        raw = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidChange("not_json", str(exc)[:120]) from exc
    if not isinstance(raw, dict):
        raise InvalidChange("not_an_object", type(raw).__name__)
    return change_from_dict(raw)


def change_from_dict(raw: dict[str, Any]) -> RecentChange:
    meta = raw.get("meta")
    if not isinstance(meta, dict):
        raise InvalidChange("missing_field", "meta")
    change_type = _required_str(raw, "type")
    wiki = _required_str(raw, "wiki")
    event_id = _required_str(meta, "id", "meta.id")
    dt = _parse_dt(meta.get("dt"))
    title = raw.get("title")
    if not isinstance(title, str):
        if change_type in REVISION_TYPES:
            raise InvalidChange("missing_field", "title")
        title = ""
    length = _object(raw.get("length"))
    revision = _object(raw.get("revision"))
    user = raw.get("user")
    return RecentChange(
        event_id=event_id,
        dt=dt,
        type=change_type,
        wiki=wiki,
        title=title,
        domain=str(meta.get("domain") or raw.get("server_name") or ""),
        stream=str(meta.get("stream") or "mediawiki.recentchange"),
        rc_id=_optional_int(raw.get("id")),
        namespace=_optional_int(raw.get("namespace")),
        user=user if isinstance(user, str) and user else None,
        is_bot=raw.get("bot") is True,
        is_minor=_optional_bool(raw.get("minor")),
        is_patrolled=_optional_bool(raw.get("patrolled")),
        comment=comment if isinstance(comment := raw.get("comment"), str) else "",
        server_name=str(raw.get("server_name") or ""),
        server_url=str(raw.get("server_url") or ""),
        length_old=_optional_int(length.get("old")),
        length_new=_optional_int(length.get("new")),
        rev_old=_optional_int(revision.get("old")),
        rev_new=_optional_int(revision.get("new")),
    )


def _required_str(container: dict[str, Any], key: str, name: str | None = None) -> str:
    value = container.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise InvalidChange("missing_field", name or key)
    return value


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _parse_dt(value: Any) -> datetime:
    if not isinstance(value, str):
        raise InvalidChange("missing_field", "meta.dt")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidChange("bad_field", f"meta.dt={value[:40]!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _optional_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def _optional_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None
