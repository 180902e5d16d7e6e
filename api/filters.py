"""The change filters that `/v1/stream` and `/v1/edits/recent` take as query parameters, parsed in one place;
`ChangeFilter.matches` applies them to an enriched document (`kcl_app.enrich.enrich`).

Each parameter takes one value or several separated by commas (any of them matches); different parameters must
all match:
- `wiki`: database names (`enwiki,dewiki`);
- `type`: `edit`, `new`, `log`, `categorize`, `other` (every other type, such as Wikidata's `external`), the
  buckets of `/v1/stats`'s `by_type`;
- `namespace`: namespace numbers (`0,14`);
- `editor`: `bot`, `human` (every editor that is not a bot: registered, temporary and IP editors), `temporary`
  (temporary accounts), `anonymous` (IP editors);
- `min_bytes`: the size of the change, `|byte_delta|`, at least this many bytes (changes without a size, such as
  log entries, never match).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.errors import InvalidParameter
from api.params import parse_wiki

CHANGE_TYPES = ("edit", "new", "log", "categorize", "other")
_KNOWN_TYPES = frozenset(CHANGE_TYPES[:-1])
EDITORS = ("bot", "human", "temporary", "anonymous")
FILTER_PARAMETERS = ("wiki", "type", "namespace", "editor", "min_bytes")
MAX_VALUES = 50
# Namespace numbers as MediaWiki assigns them: small integers, negative for the virtual ones.
NAMESPACE_PATTERN = r"-?[0-9]{1,9}"
_NAMESPACE = re.compile(NAMESPACE_PATTERN)
_BYTES = re.compile(r"[0-9]{1,9}")
MAX_MIN_BYTES = 999_999_999
# The enriched document's `editor` kinds that each `editor` value accepts.
_EDITOR_KINDS = {
    "bot": frozenset({"bot"}),
    "human": frozenset({"user", "temporary", "anonymous", "suppressed"}),
    "temporary": frozenset({"temporary"}),
    "anonymous": frozenset({"anonymous"}),
}


@dataclass(frozen=True, slots=True)
class ChangeFilter:
    """What a client asked for; an empty field matches everything."""

    wikis: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    namespaces: frozenset[int] = frozenset()
    editor_kinds: frozenset[str] = frozenset()
    min_bytes: int | None = None

    @property
    def is_everything(self) -> bool:
        return self == KEEP_ALL

    @property
    def single_wiki(self) -> str | None:
        """The one wiki asked for, if exactly one: stores keep a list of each wiki's recent changes."""
        return next(iter(self.wikis)) if len(self.wikis) == 1 else None

    def matches(self, doc: Mapping[str, Any]) -> bool:
        if self.wikis and doc.get("wiki") not in self.wikis:
            return False
        if self.types and _type_bucket(doc.get("type")) not in self.types:
            return False
        if self.namespaces and doc.get("namespace") not in self.namespaces:
            return False
        if self.editor_kinds and doc.get("editor") not in self.editor_kinds:
            return False
        if self.min_bytes is not None:
            delta = doc.get("byte_delta")
            if not isinstance(delta, int) or abs(delta) < self.min_bytes:
                return False
        return True


KEEP_ALL = ChangeFilter()


def _type_bucket(value: object) -> str:
    return value if isinstance(value, str) and value in _KNOWN_TYPES else "other"


def parse_change_filter(args: Mapping[str, str]) -> ChangeFilter:
    """The filter of a request's query parameters (`request.args`); raises `InvalidParameter` naming the one that is
    wrong. Parameters other than `FILTER_PARAMETERS` are left to the caller."""
    wikis = frozenset(parse_wiki(value) for value in _values(args, "wiki"))
    types = frozenset(_choice(value, "type", CHANGE_TYPES) for value in _values(args, "type"))
    namespaces = frozenset(_namespace(value) for value in _values(args, "namespace"))
    editors = [_choice(value, "editor", EDITORS) for value in _values(args, "editor")]
    kinds = frozenset().union(*(_EDITOR_KINDS[editor] for editor in editors)) if editors else frozenset()
    return ChangeFilter(wikis, types, namespaces, kinds, _min_bytes(args.get("min_bytes")))


def _values(args: Mapping[str, str], name: str) -> list[str]:
    raw = args.get(name)
    if raw is None:
        return []
    values = raw.split(",")
    if len(values) > MAX_VALUES:
        raise InvalidParameter(f"{name} takes at most {MAX_VALUES} comma-separated values, got {len(values)}")
    return values


def _choice(value: str, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InvalidParameter(f"{name} must be one of {', '.join(choices)} (comma-separated), got {value[:80]!r}")
    return value


def _namespace(value: str) -> int:
    if not _NAMESPACE.fullmatch(value):
        raise InvalidParameter(f"namespace must be namespace numbers such as 0 or 0,14, got {value[:80]!r}")
    return int(value)


def _min_bytes(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not _BYTES.fullmatch(raw):
        raise InvalidParameter(f"min_bytes must be an integer from 0 to {MAX_MIN_BYTES}, got {raw[:80]!r}")
    return int(raw)
