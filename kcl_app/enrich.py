"""Enrichment of a parsed change: who edited, where, how much, and whether it undid someone else's work.

Pure: no I/O. The result is a plain dict of JSON types, stored as-is in DynamoDB and Redis.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from wikitide.events import RecentChange

SYNTHETIC_STREAM = "wikitide.synthetic"
# MediaWiki keeps 500 characters of a summary; a longer one is cut here (its length and hash kept), so every
# stored document stays small whatever a source sends (the other fields are bounded by the parse).
COMMENT_LIMIT = 1000

# MediaWiki's canonical namespace names; wikis add their own above 100, reported as "ns<N>".
NAMESPACES = {
    -2: "Media", -1: "Special", 0: "Main", 1: "Talk", 2: "User", 3: "User talk", 4: "Project",
    5: "Project talk", 6: "File", 7: "File talk", 8: "MediaWiki", 9: "MediaWiki talk", 10: "Template",
    11: "Template talk", 12: "Help", 13: "Help talk", 14: "Category", 15: "Category talk",
    118: "Draft", 119: "Draft talk", 120: "Property", 121: "Property talk", 146: "Lexeme",
    828: "Module", 829: "Module talk", 2600: "Topic",
}

# Edit summaries that MediaWiki and the common tools write when undoing others' edits (English and the
# largest wikis); a heuristic, documented in README: a summary can claim a revert it is not.
REVERT_PATTERNS = re.compile(
    r"(\bundid revision\b|\bundo\b|\breverted edits? by\b|\breverted \d+ edits?\b|\brevert(ed|ing)? to\b"
    r"|\brv[vt]?\b|\brollback\b|\bRückgängig\b|\bÄnderung \d+ von .* rückgängig|\bannulation\b"
    r"|\brévocation\b|\bdeshecha la edición\b|\brevertidos los cambios\b|\bannullata la modifica\b"
    r"|\bотмена правки\b|\bоткат\b|\b取消\b|\b差し戻し\b|\b회귀\b|\btag:\s*mw-(undo|rollback|manual-revert))",
    re.IGNORECASE,
)

# Every pattern above contains one of these words: looking for them in the lowercased summary first spares the
# full pattern on almost every summary (it was a third of enrich's cost).
_REVERT_HINTS = re.compile(
    "undid|undo|revert|rv|rollback|rückgängig|annulation|révocation|deshecha|annullata|отмена|откат|取消|差し戻し|회귀"
)
_TEMP_ACCOUNT = re.compile(r"^~\d{4}-")
_PROJECT_HOSTS = {
    "commons.wikimedia.org": ("commons", None),
    "www.wikidata.org": ("wikidata", None),
    "meta.wikimedia.org": ("meta", None),
    "species.wikimedia.org": ("species", None),
    "www.mediawiki.org": ("mediawiki", None),
}


def classify_editor(user: str | None, is_bot: bool) -> str:
    """`bot`, `temporary` (temporary account `~YYYY-...`), `anonymous` (an IP), `suppressed` (no user), or `user`."""
    if user is None:
        return "suppressed"
    if is_bot:
        return "bot"
    if _TEMP_ACCOUNT.match(user):
        return "temporary"
    if "." not in user and ":" not in user:  # neither IPv4 nor IPv6; spares the costly ValueError below
        return "user"
    try:
        ipaddress.ip_address(user)
    except ValueError:
        return "user"
    return "anonymous"


def project_and_language(change: RecentChange) -> tuple[str, str | None]:
    """From `ko.wikipedia.org` -> (`wikipedia`, `ko`); Commons, Wikidata and other shared wikis have no language."""
    host = change.server_name or change.domain
    if host in _PROJECT_HOSTS:
        return _PROJECT_HOSTS[host]
    parts = host.split(".")
    if len(parts) >= 3:
        return parts[-2], parts[0]
    return (change.wiki, None)


def is_revert(comment: str) -> bool:
    if not comment or _REVERT_HINTS.search(comment.lower()) is None:
        return False
    return REVERT_PATTERNS.search(comment) is not None


def page_url(change: RecentChange) -> str | None:
    base = change.server_url or (f"https://{change.server_name}" if change.server_name else "")
    if not base or not change.title:
        return None
    return f"{base}/wiki/{quote(change.title.replace(' ', '_'), safe='/:()_,')}"


@lru_cache(maxsize=4096)
def second_text(dt: datetime) -> str:
    """`meta.dt` to the second, as stored; cached because a batch holds a few seconds of events."""
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def enrich(change: RecentChange) -> dict[str, Any]:
    """The stored document of a change. A comment over `COMMENT_LIMIT` characters is cut; then `comment_chars`
    holds its full length and `comment_sha256` the hash of its UTF-8 bytes."""
    project, language = project_and_language(change)
    namespace_name = None
    if change.namespace is not None:
        namespace_name = NAMESPACES.get(change.namespace, f"ns{change.namespace}")
    doc: dict[str, Any] = {
        "key": change.dedup_key,
        "event_id": change.event_id,
        "wiki": change.wiki,
        "type": change.type,
        "title": change.title,
        "namespace": change.namespace,
        "namespace_name": namespace_name,
        "dt": second_text(change.dt),
        "user": change.user,
        "editor": classify_editor(change.user, change.is_bot),
        "bot": change.is_bot,
        "minor": change.is_minor,
        "patrolled": change.is_patrolled,
        "byte_delta": change.byte_delta,
        "rev_old": change.rev_old,
        "rev_new": change.rev_new,
        "rc_id": change.rc_id,
        "project": project,
        "language": language,
        "is_revert": is_revert(change.comment),
        "page_url": page_url(change),
        "comment": change.comment,
        "synthetic": change.stream == SYNTHETIC_STREAM,
    }
    if len(change.comment) > COMMENT_LIMIT:
        doc["comment"] = change.comment[:COMMENT_LIMIT]
        doc["comment_chars"] = len(change.comment)
        doc["comment_sha256"] = hashlib.sha256(change.comment.encode("utf-8")).hexdigest()
    return doc
