"""The API's contract: the parameters each endpoint takes and the bodies it answers, declared once as marshmallow
schemas. The routes read their parameters through them (`@bp.input`) and answer through them (`@bp.output`), and
APIFlask generates `/openapi.json` from them.

A parameter is checked by the parser the rest of the API uses (`api.params`, `api.filters`, `api.windows`), so a
bad value gets that parser's message, which names the parameter; beside it, the field's metadata states the same
rule for the document, built from the parser's own pattern and bounds. `tests/integration/test_api_contract.py`
checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, missing, post_load

from api.errors import InvalidParameter
from api.filters import (
    CHANGE_TYPES,
    EDITORS,
    FILTER_PARAMETERS,
    MAX_MIN_BYTES,
    MAX_VALUES,
    NAMESPACE_PATTERN,
    parse_change_filter,
)
from api.params import (
    FEED_ID_PATTERN,
    LETTER_ID_MAX_CHARS,
    LETTER_ID_PATTERN,
    MAX_TITLE_CHARS,
    PATH_TITLE_PATTERN,
    TITLE_PATTERN,
    WIKI_PATTERN,
    decode_cursor,
    parse_last_event_id,
    parse_letter_id,
    parse_limit,
    parse_path_title,
    parse_rev_id,
    parse_title,
    parse_wiki,
)
from api.recent import CURSOR_PATTERN, parse_cursor
from api.trending import TRENDING_WINDOWS
from api.windows import WINDOWS, parse_window
from wikitide.events import REASONS
from wikitide.limits import MAX_SAFE_INTEGER

PROCESSING_ERROR = "processing_error"
DEAD_LETTER_REASONS = (*REASONS, PROCESSING_ERROR)


class Parsed(fields.String):
    """A text parameter read by `parse`, which raises `InvalidParameter` naming the parameter; the loaded value is
    what `parse` returns. `rule` is the same check in the document's terms (pattern, bounds, enum)."""

    def __init__(self, parse: Callable[[str], Any], rule: Mapping[str, Any], description: str = "",
                 **kwargs: Any) -> None:
        super().__init__(metadata={**rule, "description": description} if description else dict(rule), **kwargs)
        self._parse = parse

    def deserialize(self, value: Any, attr: str | None = None, data: Mapping[str, Any] | None = None,
                    **kwargs: Any) -> Any:
        # A required parameter that is absent gets its parser's answer to an empty value, which names it.
        return super().deserialize("" if value is missing and self.required else value, attr, data, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        try:
            return self._parse(super()._deserialize(value, attr, data, **kwargs))
        except InvalidParameter as exc:
            raise ValidationError(str(exc)) from exc


def _anchored(pattern: str) -> str:
    return f"^{pattern}$"


def _listed(item: str, longest: int) -> dict[str, Any]:
    """The rule of a comma-separated filter: up to `MAX_VALUES` items of `longest` characters at most."""
    return {"type": "string", "pattern": _anchored(f"{item}(,{item}){{0,{MAX_VALUES - 1}}}"),
            "maxLength": (longest + 1) * MAX_VALUES - 1}


def _limit(default: int, maximum: int, description: str) -> Parsed:
    return Parsed(lambda raw: parse_limit(raw, default=default, maximum=maximum),
                  {"type": "integer", "minimum": 1, "maximum": maximum, "default": default}, description,
                  load_default=default)


def _window(names: tuple[str, ...] | list[str]) -> Parsed:
    def check(raw: str) -> str:
        parse_window(raw)
        return raw

    return Parsed(check, {"type": "string", "enum": list(names)},
                  "Window of minute buckets ending with the newest processed minute.", required=True)


def _wiki(description: str = "Restrict to one wiki (database name, e.g. `enwiki`).", **kwargs: Any) -> Parsed:
    return Parsed(parse_wiki, {"type": "string", "pattern": _anchored(WIKI_PATTERN), "example": "enwiki"}, description,
                  **kwargs)


def _title_rule(pattern: str, example: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": MAX_TITLE_CHARS, "pattern": _anchored(pattern),
            "example": example}


class Parameters(Schema):
    class Meta:
        unknown = EXCLUDE  # parameters a route does not take are ignored, as any web server does


class StatsQuery(Parameters):
    window = _window(list(WINDOWS))
    wiki = _wiki(load_default=None)


class TopPagesQuery(StatsQuery):
    limit = _limit(10, 100, "Number of pages.")


class TrendingQuery(Parameters):
    window = _window(list(TRENDING_WINDOWS))
    wiki = _wiki(load_default=None)
    limit = _limit(20, 100, "Number of pages.")


class WikisQuery(Parameters):
    window = _window(list(WINDOWS))


class LatestChangeQuery(Parameters):
    wiki = _wiki("The wiki's database name, e.g. `enwiki`.", required=True)
    title = Parsed(parse_title, _title_rule(TITLE_PATTERN, "Main Page"),
                   "The title as in events: with spaces and the namespace prefix, e.g. 'Talk:Tide'.", required=True)


class PagePath(Parameters):
    wiki = _wiki("The wiki's database name, e.g. `enwiki`.", required=True)
    title = Parsed(parse_path_title, _title_rule(PATH_TITLE_PATTERN, "Main_Page"),
                   "The title with its namespace prefix; `_` and spaces are the same (`Talk:Main_Page`); a `/` in a "
                   "title is written as is.", required=True)


class PageQuery(Parameters):
    limit = _limit(10, 100, "Number of last changes.")


class EditPath(Parameters):
    wiki = _wiki("The wiki's database name, e.g. `enwiki`.", required=True)
    rev_id = Parsed(parse_rev_id, {"type": "integer", "minimum": 1, "maximum": MAX_SAFE_INTEGER, "example": 1234567890},
                    required=True)


def _choices(names: tuple[str, ...]) -> str:
    return f"({'|'.join(names)})"


class ChangeFilterQuery(Parameters):
    """The filters of `api.filters`; loaded as `{"matches": ChangeFilter, ...}` by `parse_change_filter`."""

    wiki = fields.String(metadata={**_listed(WIKI_PATTERN, 64), "description": "Only these wikis: database names, "
                                   "comma-separated (`enwiki,dewiki`)."})
    type = fields.String(metadata={**_listed(_choices(CHANGE_TYPES), max(map(len, CHANGE_TYPES))),
                                   "description": "Only these change types, comma-separated; `other` is every "
                                   "other type (such as Wikidata's `external`), as in `/v1/stats`'s `by_type`."})
    namespace = fields.String(metadata={**_listed(NAMESPACE_PATTERN, 10),
                                        "description": "Only these namespace numbers, comma-separated (`0,14`)."})
    editor = fields.String(metadata={**_listed(_choices(EDITORS), max(map(len, EDITORS))),
                                     "description": "Only these editors, comma-separated: `bot`; `human` (every editor "
                                     "that is not a bot); `temporary` (temporary accounts); `anonymous` (IP editors)."})
    min_bytes = fields.String(metadata={"type": "integer", "minimum": 0, "maximum": MAX_MIN_BYTES,
                                        "description": "Only changes of at least this many bytes either way "
                                        "(`|byte_delta|`); changes without a size (log entries) never match."})

    @post_load
    def _filter(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        raw: dict[str, str] = {name: data.pop(name) for name in FILTER_PARAMETERS if name in data}
        try:
            return {**data, "matches": parse_change_filter(raw)}
        except InvalidParameter as exc:
            raise ValidationError(str(exc)) from exc


class RecentQuery(ChangeFilterQuery):
    limit = _limit(20, 500, "Number of changes.")
    cursor = Parsed(parse_cursor, {"type": "string", "pattern": _anchored(CURSOR_PATTERN), "maxLength": 816},
                    "The `next` value of the previous answer.", load_default=None)


_FEED_ID_RULE = {"type": "string", "pattern": _anchored(FEED_ID_PATTERN), "maxLength": 31}


class StreamQuery(ChangeFilterQuery):
    last_event_id = Parsed(parse_last_event_id, _FEED_ID_RULE, "Resume after this event id (what the "
                           "`Last-Event-ID` header says; the header wins when both are sent).", load_default=None)


class StreamHeaders(Parameters):
    last_event_id = Parsed(parse_last_event_id, _FEED_ID_RULE, "The `id:` of the last event received: the stream "
                           "resumes right after it (EventSource sends it by itself on reconnect).",
                           data_key="Last-Event-ID", load_default=None)


def _dead_letter_reason(raw: str) -> str:
    if raw not in DEAD_LETTER_REASONS:
        raise InvalidParameter(f"reason must be one of {', '.join(DEAD_LETTER_REASONS)}, got {raw[:80]!r}")
    return raw


class DeadLettersQuery(Parameters):
    reason = Parsed(_dead_letter_reason, {"type": "string", "enum": list(DEAD_LETTER_REASONS)}, "Only this reason.",
                    load_default=None)
    limit = _limit(50, 200, "Dead letters per page.")
    cursor = Parsed(lambda raw: decode_cursor(raw),
                    {"type": "string", "pattern": _anchored(LETTER_ID_PATTERN), "maxLength": LETTER_ID_MAX_CHARS},
                    "The `next` of the previous page (the id of the last dead letter it listed).", load_default=None)


class LetterPath(Parameters):
    letter_id = Parsed(parse_letter_id, {"type": "string", "pattern": _anchored(LETTER_ID_PATTERN)},
                       "The dead letter's id, `<shard id>#<sequence number>` (`#` written `%23`).", required=True)


class ScaleBody(Schema):
    shards = fields.Integer(required=True, metadata={"minimum": 1, "maximum": 1024})


class ReplayBody(Schema):
    payload = fields.Raw(metadata={"description": "The fixed record: a recentchange event object, or its JSON text.",
                                   "oneOf": [{"type": "object"}, {"type": "string"}]})


# Answers.


class Error(Schema):
    error = fields.String(required=True, metadata={"description": "What went wrong; a 400 names the parameter."})


class AsStored(Schema):
    """A body answered as the store or the control plane gave it: the fields describe it for the document, and a
    field they do not name passes through (`additionalProperties`). Not dumped field by field: that made a
    500-change `/v1/edits/recent` take 28 ms instead of 9 (in-process medians; `benchmarks/api_contract_overhead.py`
    measures what the layer costs now)."""

    class Meta:
        unknown = "include"

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        return list(obj) if (self.many if many is None else many) else obj


class Event(AsStored):
    """An enriched recent change as the processor stored it (`kcl_app.enrich`)."""

    key = fields.String()
    wiki = fields.String()
    type = fields.String()
    title = fields.String()
    namespace = fields.Integer(allow_none=True)
    dt = fields.String(metadata={"format": "date-time"})
    user = fields.String(allow_none=True)
    editor = fields.String()
    bot = fields.Boolean()
    byte_delta = fields.Integer(allow_none=True)
    rev_new = fields.Integer(allow_none=True)
    page_url = fields.String()
    comment = fields.String(allow_none=True)
    synthetic = fields.Boolean()


class ByType(Schema):
    edit = fields.Integer(required=True)
    new = fields.Integer(required=True)
    log = fields.Integer(required=True)
    categorize = fields.Integer(required=True)
    other = fields.Integer(required=True)


class WindowEdits(Schema):
    class Meta:
        include = {name: fields.Integer(required=True) for name in WINDOWS}  # "1m" is no Python name


_AS_OF = {"format": "date-time", "description": "Start of the newest processed minute (UTC, `YYYY-MM-DDTHH:MM:00Z`); "
          "null before any event."}


class Stats(Schema):
    window = fields.String(required=True, metadata={"enum": list(WINDOWS)})
    wiki = fields.String(required=True, allow_none=True)
    events = fields.Integer(required=True)
    by_type = fields.Nested(ByType, required=True)
    bot_events = fields.Integer(required=True)
    human_events = fields.Integer(required=True)
    bytes_added = fields.Integer(required=True)
    bytes_removed = fields.Integer(required=True)
    synthetic_events = fields.Integer(required=True, metadata={
        "description": "Events from the synthetic generator; the dashboard shows a banner when above 0."})
    as_of = fields.String(required=True, allow_none=True, metadata=_AS_OF)


class Page(Schema):
    wiki = fields.String(required=True)
    title = fields.String(required=True)
    edits = fields.Integer(required=True, metadata={"description": "Distinct edit and new revisions in the window."})


class TopPages(Schema):
    window = fields.String(required=True)
    wiki = fields.String(required=True, allow_none=True)
    pages = fields.List(fields.Nested(Page), required=True)


class RecentEdits(Schema):
    edits = fields.List(fields.Nested(Event), required=True)
    next = fields.String(required=True, allow_none=True,
                         metadata={"description": "Pass as `cursor` for the next page; null at the end."})


class WikiRow(Schema):
    wiki = fields.String(required=True)
    events = fields.Integer(required=True)
    edits = fields.Integer(required=True)
    bot_events = fields.Integer(required=True)
    bot_share = fields.Float(required=True, metadata={"description": "bot_events / events, 4 decimals"})
    bytes_added = fields.Integer(required=True)
    bytes_removed = fields.Integer(required=True)


class Wikis(Schema):
    window = fields.String(required=True)
    as_of = fields.String(required=True, allow_none=True, metadata=_AS_OF)
    wikis = fields.List(fields.Nested(WikiRow), required=True)


class TrendingPage(Page):
    baseline_edits = fields.Integer(required=True)
    expected_edits = fields.Float(required=True)
    score = fields.Float(required=True)


class Trending(Schema):
    window = fields.String(required=True)
    wiki = fields.String(required=True, allow_none=True)
    baseline_hours = fields.Integer(required=True)
    as_of = fields.String(required=True, allow_none=True, metadata=_AS_OF)
    pages = fields.List(fields.Nested(TrendingPage), required=True)


class PageView(Schema):
    wiki = fields.String(required=True)
    title = fields.String(required=True)
    as_of = fields.String(required=True, allow_none=True, metadata=_AS_OF)
    edits = fields.Nested(WindowEdits, required=True)
    latest_change = fields.Nested(Event, required=True, allow_none=True)
    changes = fields.List(fields.Nested(Event), required=True)


class Dependency(Schema):
    ok = fields.Boolean(required=True)
    latency_ms = fields.Float(required=True)
    error = fields.String(metadata={"description": "What failed, in words that name no address."})


class Pipeline(Schema):
    state = fields.String(required=True, metadata={"enum": ["starting", "counting"]})
    reason = fields.String(metadata={"description": "Why nothing is counted yet (while starting)."})
    latest_minute = fields.String(metadata={"format": "date-time",
                                            "description": "The newest event-time minute counted."})


class Health(Schema):
    status = fields.String(required=True, metadata={
        "enum": ["ok", "starting", "degraded"],
        "description": "ok: every dependency answered and events are being counted; starting: every dependency "
                       "answered but nothing is counted yet (see pipeline.reason); degraded: a dependency did not "
                       "answer (503)."})
    dependencies = fields.Dict(keys=fields.String(), values=fields.Nested(Dependency), required=True)
    age_seconds = fields.Float(required=True, metadata={
        "minimum": 0, "description": "Seconds since these checks ran (WIKITIDE_HEALTH_CACHE_SECONDS)."})
    pipeline = fields.Nested(Pipeline, metadata={
        "description": "Present when every dependency answered: whether the processors have counted anything yet."})


class ControlAnswer(AsStored):
    """A control endpoint's answer: its parts are the operator's tools' (`wikitide workers`, `producer-status`)."""
