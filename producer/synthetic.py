"""An endless, seeded stream of made-up recentchange events, for load and demos when replaying is not enough.

Every event is labelled so it can never pass for Wikimedia data: `meta.stream` and `meta.topic` are
`wikitide.synthetic`, the comment starts with `[synthetic] `, and the SSE ids name the same topic.
Otherwise the events follow the current `mediawiki/recentchange` schema and roughly the live mix
(edit 63 %, categorize 30 %, log 5 %, new 2 %; a fifth by bots; a few very busy pages).
"""

from __future__ import annotations

import html
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from producer.frames import Frame, replay_id

SYNTHETIC_STREAM = "wikitide.synthetic"
COMMENT_PREFIX = "[synthetic] "
SCHEMA = "/mediawiki/recentchange/1.0.1"

TYPE_WEIGHTS = {"edit": 63, "categorize": 30, "log": 5, "new": 2}
BOT_SHARE = 0.2
TEMPORARY_ACCOUNT_SHARE = 0.1  # of the events by people (not bots)
HOT_PAGE_SHARE = 0.03  # of edits, spread over HOT_PAGES so that "top pages" has clear leaders


@dataclass(frozen=True)
class Wiki:
    name: str
    domain: str
    weight: int
    has_patrol: bool = True


WIKIS = (
    Wiki("commonswiki", "commons.wikimedia.org", 23),
    Wiki("wikidatawiki", "www.wikidata.org", 22),
    Wiki("enwiki", "en.wikipedia.org", 12),
    Wiki("viwiki", "vi.wikipedia.org", 6),
    Wiki("dewiki", "de.wikipedia.org", 5, has_patrol=False),
    Wiki("frwiki", "fr.wikipedia.org", 5),
    Wiki("eswiki", "es.wikipedia.org", 4),
    Wiki("ruwiki", "ru.wikipedia.org", 4),
    Wiki("jawiki", "ja.wikipedia.org", 3),
    Wiki("itwiki", "it.wikipedia.org", 3),
    Wiki("zhwiki", "zh.wikipedia.org", 3),
    Wiki("arwiki", "ar.wikipedia.org", 3),
    Wiki("plwiki", "pl.wikipedia.org", 2, has_patrol=False),
    Wiki("ptwiki", "pt.wikipedia.org", 2),
    Wiki("enwiktionary", "en.wiktionary.org", 3),
)
_WIKIS_BY_NAME = {wiki.name: wiki for wiki in WIKIS}
HOT_PAGES = (
    ("enwiki", "Synthetic breaking news"),
    ("wikidatawiki", "Q4242"),
    ("dewiki", "Synthetische Liste"),
)
LOG_ACTIONS = (
    ("abusefilter", "hit", 0),
    ("upload", "upload", 6),
    ("patrol", "patrol", 0),
    ("newusers", "create", 2),
    ("block", "block", 2),
    ("delete", "delete", 0),
    ("thanks", "thank", 2),
)
EDIT_COMMENTS = (
    "/* History */ expanded",
    "copyedit",
    "Reverted edits",
    "Added reference",
    "/* wbsetclaim-update:2||1 */ [[Property:P18]]",
    "Updated population figures",
    "Fixed typo",
)


def synthetic_frames(seed: int = 0, start: datetime | None = None, rate: float = 30.0) -> Iterator[Frame]:
    """Frames forever: `meta.dt` starts at `start` (default: now) and advances `1/rate` s per event.

    The same seed and start give the same frames, byte for byte.
    """
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    start = datetime.now(UTC) if start is None else start
    # A naive start is read as UTC, so the `Z` on every `meta.dt` stays true.
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    return _frames(random.Random(seed), start, rate)


def _frames(rng: random.Random, start: datetime, rate: float) -> Iterator[Frame]:
    rc_ids = {wiki.name: 1_000_000 * (n + 1) for n, wiki in enumerate(WIKIS)}
    next_revision = 900_000_000
    offset = 0
    while True:
        dt = start + timedelta(microseconds=round(offset * 1_000_000 / rate))
        change_type = rng.choices(list(TYPE_WEIGHTS), weights=list(TYPE_WEIGHTS.values()))[0]
        wiki, namespace, title = _page(rng, change_type)
        rc_ids[wiki.name] += 1
        event = _event(rng, wiki, change_type, (namespace, title), dt, offset, rc_ids[wiki.name])
        if change_type in ("edit", "new"):
            next_revision += 1
            _add_revision(rng, event, wiki, change_type, next_revision)
        yield Frame(
            data=json.dumps(event, ensure_ascii=False, separators=(",", ":")),
            id=replay_id(offset, SYNTHETIC_STREAM),
        )
        offset += 1


def _event(
    rng: random.Random,
    wiki: Wiki,
    change_type: str,
    page: tuple[int, str],
    dt: datetime,
    offset: int,
    rc_id: int,
) -> dict[str, Any]:
    is_bot = rng.random() < BOT_SHARE
    namespace, title = page
    comment = COMMENT_PREFIX + _comment(rng, change_type, title)
    url = f"https://{wiki.domain}/wiki/{quote(title.replace(' ', '_'), safe='/:')}"
    event: dict[str, Any] = {
        "$schema": SCHEMA,
        "meta": {
            "uri": url,
            "request_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "dt": dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z",
            "domain": wiki.domain,
            "stream": SYNTHETIC_STREAM,
            "topic": SYNTHETIC_STREAM,
            "partition": 0,
            "offset": offset,
        },
        "id": rc_id,
        "type": change_type,
        "namespace": namespace,
        "title": title,
        "title_url": url,
        "comment": comment,
        "timestamp": int(dt.timestamp()),
        "user": _user(rng, is_bot),
        "bot": is_bot,
    }
    if change_type == "log":
        log_type, log_action, event["namespace"] = rng.choice(LOG_ACTIONS)
        event.update(
            log_id=rc_id,
            log_type=log_type,
            log_action=log_action,
            log_params={},
            log_action_comment=f"{log_type}/{log_action} [[{title}]]",
        )
    event.update(
        server_url=f"https://{wiki.domain}",
        server_name=wiki.domain,
        server_script_path="/w",
        wiki=wiki.name,
        parsedcomment=html.escape(comment, quote=False),
    )
    return event


def _add_revision(rng: random.Random, event: dict[str, Any], wiki: Wiki, change_type: str, rev: int) -> None:
    new_length = rng.randint(80, 60_000)
    if change_type == "new":
        length, revision = {"new": new_length}, {"new": rev}
        query = f"oldid={rev}"
    else:
        old_length = max(0, new_length + rng.randint(-400, 400))
        old_rev = rev - rng.randint(1, 10_000_000)
        length, revision = {"old": old_length, "new": new_length}, {"old": old_rev, "new": rev}
        query = f"diff={rev}&oldid={old_rev}"
    event["minor"] = change_type == "edit" and rng.random() < 0.3
    if wiki.has_patrol:
        event["patrolled"] = event["bot"] or rng.random() < 0.6
    event["length"], event["revision"] = length, revision
    event["notify_url"] = f"https://{wiki.domain}/w/index.php?{query}&rcid={event['id']}"


def _page(rng: random.Random, change_type: str) -> tuple[Wiki, int, str]:
    if change_type == "edit" and rng.random() < HOT_PAGE_SHARE:
        wiki_name, title = rng.choice(HOT_PAGES)
        return _WIKIS_BY_NAME[wiki_name], 0, title
    wiki = rng.choices(WIKIS, weights=[w.weight for w in WIKIS])[0]
    if change_type == "categorize":
        return wiki, 14, f"Category:Synthetic topic {rng.randint(1, 400)}"
    if wiki.name == "wikidatawiki":
        return wiki, 0, f"Q{rng.randint(1, 130_000_000)}"
    if wiki.name == "commonswiki":
        return wiki, 6, f"File:Synthetic photo {rng.randint(1, 5_000_000)}.jpg"
    return wiki, 0, f"Synthetic article {rng.randint(1, 2_000_000)}"


def _comment(rng: random.Random, change_type: str, title: str) -> str:
    if change_type == "categorize":
        verb = rng.choice(("added to", "removed from"))
        return f"[[:Synthetic article {rng.randint(1, 2_000_000)}]] {verb} category"
    if change_type == "new":
        return f"Created page with '{title} is a synthetic page.'"
    return rng.choice(EDIT_COMMENTS)


def _user(rng: random.Random, is_bot: bool) -> str:
    if is_bot:
        return f"SynthBot{rng.randint(1, 40)}"
    if rng.random() < TEMPORARY_ACCOUNT_SHARE:
        return f"~2025-{rng.randint(10_000, 99_999)}-{rng.randint(10, 99)}"
    return f"SynthUser{rng.randint(1, 5_000)}"
