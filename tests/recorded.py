"""Reading the recorded events as plain JSON, independently of wikitide's own parser, for expected values.

Everything here is computed from the event's JSON with the standard library: the identity, the event-time
minute, the page. The store-key helpers only spell those values the way the stores lay them out.
"""

from __future__ import annotations

from datetime import datetime

REVISION_TYPES = ("edit", "new")


def identity(event: dict) -> tuple:
    """The de-duplication identity as the issue defines it: revision per wiki, else recent-change id, else meta.id."""
    if event["type"] in REVISION_TYPES and event.get("revision", {}).get("new") is not None:
        return (event["wiki"], "rev", event["revision"]["new"])
    if event.get("id") is not None:
        return (event["wiki"], "rc", event["id"])
    return ("meta", event["meta"]["id"])


def events_table_key(event: dict) -> str:
    """`identity` as the events table spells its `pk`."""
    found = identity(event)
    return f"meta#{found[1]}" if found[0] == "meta" else f"{found[0]}#{found[1]}#{found[2]}"


def event_minute(event: dict) -> int:
    """The UTC minute of `meta.dt`, as seconds since the epoch // 60."""
    return int(datetime.fromisoformat(event["meta"]["dt"].replace("Z", "+00:00")).timestamp()) // 60


def is_canary(event: dict) -> bool:
    return event.get("meta", {}).get("domain") == "canary"


def counted_page(event: dict) -> tuple[str, str] | None:
    """(wiki, title) for the changes counted as page edits (an edit or page creation with a revision)."""
    if event["type"] in REVISION_TYPES and event.get("revision", {}).get("new") is not None:
        return (event["wiki"], event["title"])
    return None

