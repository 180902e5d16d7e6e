"""Reading the recorded events as plain JSON, independently of wikitide's own parser, for expected values."""

from __future__ import annotations


def identity(event: dict) -> tuple:
    """The de-duplication identity as the issue defines it: revision per wiki, else recent-change id, else meta.id."""
    if event["type"] in ("edit", "new") and event.get("revision", {}).get("new") is not None:
        return (event["wiki"], "rev", event["revision"]["new"])
    if event.get("id") is not None:
        return (event["wiki"], "rc", event["id"])
    return ("meta", event["meta"]["id"])
