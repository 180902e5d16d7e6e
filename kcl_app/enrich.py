"""Enrichment of a parsed change: who edited, where, how much, and whether it undid someone else's work.

Pure: no I/O. The result is a plain dict of JSON types, stored as-is in DynamoDB and Redis.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import quote

from wikitide.events import RecentChange

SYNTHETIC_STREAM = "wikitide.synthetic"

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
    return bool(comment) and REVERT_PATTERNS.search(comment) is not None


def page_url(change: RecentChange) -> str | None:
    base = change.server_url or (f"https://{change.server_name}" if change.server_name else "")
    if not base or not change.title:
        return None
    return f"{base}/wiki/{quote(change.title.replace(' ', '_'), safe='/:()_,')}"


def enrich(change: RecentChange) -> dict[str, Any]:
    project, language = project_and_language(change)
    namespace_name = None
    if change.namespace is not None:
        namespace_name = NAMESPACES.get(change.namespace, f"ns{change.namespace}")
    return {
        "key": change.dedup_key,
        "event_id": change.event_id,
        "wiki": change.wiki,
        "type": change.type,
        "title": change.title,
        "namespace": change.namespace,
        "namespace_name": namespace_name,
        "dt": change.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
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
