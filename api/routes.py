"""HTTP entrypoints: take the parameters `api.schemas` parsed, delegate to `api.queries` or a port, answer JSON.

`api_v1` serves the data, `service` the health check, the dashboard and the API's documentation (`/docs`, over
the OpenAPI document APIFlask generates at `/openapi.json`).
"""

from __future__ import annotations

import re
from typing import Any

from apiflask import APIBlueprint, APIFlask, HTTPError
from flask import Response, current_app, jsonify, send_from_directory
from swagger_ui_bundle import swagger_ui_path
from werkzeug.exceptions import HTTPException

from api import queries, schemas
from api.errors import InvalidParameter
from api.health import is_healthy
from api.ports import Services
from wikitide.errors import DependencyUnavailable

EXTENSION = "wikitide"
# A 503 asks the client to come back after this long (the API reads DynamoDB alone for 5 s after Redis failed).
RETRY_AFTER_SECONDS = 5
# Anything in a message that could locate a server: URLs, IPv4 and bracketed IPv6 addresses, host:port.
_ADDRESS = re.compile(r"\w+://\S+|\[[0-9A-Fa-f:.]+\](:\d+)?|\b\d{1,3}(\.\d{1,3}){3}(:\d+)?|\b[\w.-]+:\d{2,5}\b")
# What every data endpoint may answer besides its 200 (each endpoint's 429 is added to the document by
# `api.openapi`, since every endpoint is rate-limited).
READ_ERRORS = {400: "A parameter is wrong; the message names it.",
               503: "A store did not answer; retry after Retry-After seconds."}
# The locations of marshmallow's messages (`@bp.input(location=...)`), which are not parameter names.
_LOCATIONS = {"query", "path", "view_args", "headers", "json"}
NOT_STORED = {404: "Nothing of it is stored."}

api_v1 = APIBlueprint("api_v1", __name__, url_prefix="/v1", tag="data")
# The read endpoints whose 200 answers an API process may reuse for a second (`api.answer_cache`): every `api_v1`
# route; `/health`, the stream and the control routes are never kept.
CACHED_ENDPOINTS = frozenset({"api_v1.stats", "api_v1.top_pages", "api_v1.recent_edits", "api_v1.wikis",
                              "api_v1.trending", "api_v1.page", "api_v1.edit", "api_v1.latest_change"})
service = APIBlueprint("service", __name__, tag="service")


def _services() -> Services:
    services: Services = current_app.extensions[EXTENSION]
    return services


@api_v1.get("/stats")
@api_v1.input(schemas.StatsQuery, location="query", arg_name="query")
@api_v1.output(schemas.Stats, description="Summed counters.")
@api_v1.doc(summary="Event counts over a window", operation_id="getStats", responses=READ_ERRORS)
def stats(query: dict[str, Any]) -> dict[str, Any]:
    return queries.window_stats(_services().stats, query["window"], query["wiki"])


@api_v1.get("/pages/top")
@api_v1.input(schemas.TopPagesQuery, location="query", arg_name="query")
@api_v1.output(schemas.TopPages, description="Pages by edits descending, then title, then wiki ascending.")
@api_v1.doc(summary="Most edited pages over a window", operation_id="getTopPages", responses=READ_ERRORS)
def top_pages(query: dict[str, Any]) -> dict[str, Any]:
    return queries.top_pages(_services().stats, query["window"], query["wiki"], query["limit"])


@api_v1.get("/edits/recent")
@api_v1.input(schemas.RecentQuery, location="query", arg_name="query")
@api_v1.output(schemas.RecentEdits, description="Newest event time first.")
@api_v1.doc(summary="Recent changes, filtered and paged", operation_id="getRecentEdits", responses=READ_ERRORS)
def recent_edits(query: dict[str, Any]) -> dict[str, Any]:
    """Recent changes, filtered and paged.

    The newest processed changes by event time (then de-duplication key), newest first. Filters combine; `next`
    is the cursor of the following page (null at the end of what is kept), and pages stay stable while new
    changes arrive (they sort above the cursor). Redis keeps the newest 500 changes overall and per wiki; while
    Redis is down or empty the answer comes from DynamoDB's time index (the last 24 h of event time). A request
    examines at most 2,000 changes (and, from DynamoDB, 30 minutes of them): a filter that matches little may
    give a short or empty page with a `next` cursor to go on from.
    """
    return queries.recent_edits(_services().stats, query["matches"], query["cursor"], query["limit"])


@api_v1.get("/wikis")
@api_v1.input(schemas.WikisQuery, location="query", arg_name="query")
@api_v1.output(schemas.Wikis, description="Every wiki with events in the window, by events descending.")
@api_v1.doc(summary="Activity per wiki over a window", operation_id="getWikis", responses=READ_ERRORS)
def wikis(query: dict[str, Any]) -> dict[str, Any]:
    return queries.wikis(_services().stats, query["window"])


@api_v1.get("/trending")
@api_v1.input(schemas.TrendingQuery, location="query", arg_name="query")
@api_v1.output(schemas.Trending, description="Trending pages, highest score first.")
@api_v1.doc(summary="Pages edited far above their usual rate", operation_id="getTrending", responses=READ_ERRORS)
def trending(query: dict[str, Any]) -> dict[str, Any]:
    """Pages edited far above their usual rate.

    Each candidate's edits in the window against what its baseline (the hours before) predicts for a window of
    that length; highest score first.
    """
    return queries.trending_pages(_services().stats, query["window"], query["wiki"], query["limit"])


@api_v1.get("/pages/<wiki>/<path:title>")
@api_v1.input(schemas.PagePath, location="path", arg_name="page")
@api_v1.input(schemas.PageQuery, location="query", arg_name="query")
@api_v1.output(schemas.PageView, description="The page.")
@api_v1.doc(summary="One page: latest change, edits per window, last changes", operation_id="getPage",
            responses={**READ_ERRORS, **NOT_STORED})
def page(wiki: str, title: str, page: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
    """One page: latest change, edits per window, last changes.

    The page's newest stored change, its edits (edit + new revisions) in each window ending with the newest
    processed minute, and its last changes from the events table (newest first). 404 when nothing of the page is
    stored.
    """
    services = _services()
    wiki_name, page_title = page["wiki"], page["title"]
    body = queries.page_detail(services.stats, services.edits, wiki_name, page_title, query["limit"])
    if body is None:
        raise HTTPError(404, f"no change of {page_title!r} on {wiki_name} is stored")
    return body


@api_v1.get("/edits/<wiki>/<rev_id>")
@api_v1.input(schemas.EditPath, location="path", arg_name="edit")
@api_v1.output(schemas.Event, description="The enriched event as stored.")
@api_v1.doc(summary="One stored edit by revision", operation_id="getEdit", responses={**READ_ERRORS, **NOT_STORED})
def edit(wiki: str, rev_id: str, edit: dict[str, Any]) -> dict[str, Any]:
    doc = _services().edits.get_edit(edit["wiki"], edit["rev_id"])
    if doc is None:
        raise HTTPError(404, f"no edit {edit['rev_id']} on {edit['wiki']}")
    return doc


@api_v1.get("/pages/latest")
@api_v1.input(schemas.LatestChangeQuery, location="query", arg_name="query")
@api_v1.output(schemas.Event, description="The enriched event as stored.")
@api_v1.doc(summary="The newest change of one page", operation_id="getLatestChange",
            responses={**READ_ERRORS, **NOT_STORED})
def latest_change(query: dict[str, Any]) -> dict[str, Any]:
    """The newest change of one page.

    The newest change of the page by event time (then recent-change id), as stored by the processor.
    """
    doc = _services().edits.latest_change(query["wiki"], query["title"])
    if doc is None:
        raise HTTPError(404, f"no change of {query['title']!r} on {query['wiki']}")
    return doc


_HEALTH = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}
_HTML = {"content": {"text/html": {"schema": {"type": "string"}}}}


@service.get("/health")
@service.output(schemas.Health, description="Redis, DynamoDB and Kinesis all answered (status ok, or starting "
                "until the first event is counted).")
@service.doc(summary="Dependency health", operation_id="getHealth",
             responses={503: {**_HEALTH, "description": "At least one dependency did not answer."}})
def health() -> tuple[dict[str, Any], int]:
    services = _services()
    results, age = services.health.results()
    ok = is_healthy(results)
    body: dict[str, Any] = {"status": "ok" if ok else "degraded", "dependencies": results,
                            "age_seconds": round(age, 3)}
    if ok:
        body["pipeline"] = _pipeline_state(services)
        if body["pipeline"]["state"] == "starting":
            body["status"] = "starting"
    return body, 200 if ok else 503


def _pipeline_state(services: Services) -> dict[str, Any]:
    try:
        return queries.pipeline_state(services.stats)
    except DependencyUnavailable:
        return {"state": "starting", "reason": "the counters could not be read just now"}


@service.get("/")
@service.doc(summary="Live dashboard", operation_id="getDashboard",
             responses={200: {**_HTML, "description": "HTML page polling the endpoints above."}})
def dashboard() -> Response:
    return current_app.send_static_file("index.html")


@service.get("/docs")
@service.doc(summary="This document, browsable (Swagger UI)", operation_id="getDocs",
             responses={200: {**_HTML, "description": "Swagger UI over /openapi.json."}})
def docs() -> Response:
    return current_app.send_static_file("docs.html")


@service.get("/docs/assets/<path:filename>")
@service.doc(hide=True)
def docs_assets(filename: str) -> Response:
    """Swagger UI's own files, from the `swagger-ui-bundle` package installed with the API."""
    return send_from_directory(swagger_ui_path, filename)


def register_error_handlers(app: APIFlask) -> None:
    """Every error answers JSON `{"error": message}`, unknown routes and wrong methods included, and every answer
    carries the security headers. A dependency's failure is logged in full and answered in words that name no
    internal address."""

    @app.error_processor
    def _refused(exc: HTTPError) -> tuple[dict[str, Any], int, dict[str, str]]:
        # A parameter a schema refused: `detail` is marshmallow's messages by location and parameter, and each
        # message is the parser's, which names the parameter.
        message = "; ".join(_messages(exc.detail)) if exc.detail else exc.message
        return {"error": message}, exc.status_code, dict(exc.headers or {})

    @app.errorhandler(InvalidParameter)
    def _invalid(exc: InvalidParameter) -> tuple[Response, int]:
        return _error(str(exc), 400)

    @app.errorhandler(DependencyUnavailable)
    def _unavailable(exc: DependencyUnavailable) -> tuple[Response, int]:
        current_app.logger.warning("dependency unavailable: %s (cause: %r)", exc, exc.__cause__)
        response, status = _error(f"{public_message(str(exc))}; try again in a few seconds", 503)
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response, status

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple[Response, int]:
        response, status = _error(exc.description or exc.name, exc.code or 500)
        # A 405's `Allow` (and any other header the exception sets), but our JSON content type.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, status


def public_message(message: str) -> str:
    """`message` without anything that locates a server (the adapters' messages should hold none already)."""
    return _ADDRESS.sub("(address withheld)", message)[:300]


def _error(message: str, status: int) -> tuple[Response, int]:
    return jsonify({"error": message}), status


def _messages(detail: Any, name: str = "") -> list[str]:
    """Each message of marshmallow's nested `{location: {parameter: [message]}}`, prefixed with the parameter's
    name where it does not say it already (marshmallow's own, such as a missing field's)."""
    if isinstance(detail, dict):
        return [message for key, value in detail.items()
                for message in _messages(value, key if key not in _LOCATIONS else "")]
    if isinstance(detail, list):
        return [message for value in detail for message in _messages(value, name)]
    text = str(detail)
    return [text if not name or name.startswith("_") or text.startswith(name) else f"{name}: {text}"]
