"""HTTP entrypoints: parse the request, delegate to `api.queries` or a port, answer JSON.

`api_v1` serves the data, `service` the health check, the dashboard and the OpenAPI document.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from api import queries
from api.errors import InvalidParameter
from api.filters import parse_change_filter
from api.headers import SECURITY_HEADERS
from api.health import is_healthy
from api.params import (
    parse_limit,
    parse_path_title,
    parse_rev_id,
    parse_title,
    parse_wiki,
    parse_wiki_filter,
)
from api.ports import Services
from api.recent import parse_cursor
from wikitide.errors import DependencyUnavailable

EXTENSION = "wikitide"
TOP_PAGES_LIMIT = (10, 100)
TRENDING_LIMIT = (20, 100)
PAGE_CHANGES_LIMIT = (10, 100)
RECENT_LIMIT = (20, 500)
# A 503 asks the client to come back after this long (the API reads DynamoDB alone for 5 s after Redis failed).
RETRY_AFTER_SECONDS = 5
# Anything in a message that could locate a server: URLs, IPv4 and bracketed IPv6 addresses, host:port.
_ADDRESS = re.compile(r"\w+://\S+|\[[0-9A-Fa-f:.]+\](:\d+)?|\b\d{1,3}(\.\d{1,3}){3}(:\d+)?|\b[\w.-]+:\d{2,5}\b")

api_v1 = Blueprint("api_v1", __name__, url_prefix="/v1")
service = Blueprint("service", __name__)


def _services() -> Services:
    services: Services = current_app.extensions[EXTENSION]
    return services


@api_v1.get("/stats")
def stats() -> dict[str, Any]:
    wiki = parse_wiki_filter(request.args.get("wiki"))
    return queries.window_stats(_services().stats, request.args.get("window", ""), wiki)


@api_v1.get("/pages/top")
def top_pages() -> dict[str, Any]:
    wiki = parse_wiki_filter(request.args.get("wiki"))
    default, maximum = TOP_PAGES_LIMIT
    limit = parse_limit(request.args.get("limit"), default=default, maximum=maximum)
    return queries.top_pages(_services().stats, request.args.get("window", ""), wiki, limit)


@api_v1.get("/edits/recent")
def recent_edits() -> dict[str, Any]:
    args = request.args
    matches = parse_change_filter(args)
    default, maximum = RECENT_LIMIT
    limit = parse_limit(args.get("limit"), default=default, maximum=maximum)
    return queries.recent_edits(_services().stats, matches, parse_cursor(args.get("cursor")), limit)


@api_v1.get("/wikis")
def wikis() -> dict[str, Any]:
    return queries.wikis(_services().stats, request.args.get("window", ""))


@api_v1.get("/trending")
def trending() -> dict[str, Any]:
    wiki = parse_wiki_filter(request.args.get("wiki"))
    default, maximum = TRENDING_LIMIT
    limit = parse_limit(request.args.get("limit"), default=default, maximum=maximum)
    return queries.trending_pages(_services().stats, request.args.get("window", ""), wiki, limit)


@api_v1.get("/pages/<wiki>/<path:title>")
def page(wiki: str, title: str) -> tuple[Response, int] | dict[str, Any]:
    wiki_name = parse_wiki(wiki)
    page_title = parse_path_title(title)
    default, maximum = PAGE_CHANGES_LIMIT
    limit = parse_limit(request.args.get("limit"), default=default, maximum=maximum)
    services = _services()
    body = queries.page_detail(services.stats, services.edits, wiki_name, page_title, limit)
    if body is None:
        return _error(f"no change of {page_title!r} on {wiki_name} is stored", 404)
    return body


@api_v1.get("/edits/<wiki>/<rev_id>")
def edit(wiki: str, rev_id: str) -> tuple[Response, int] | dict[str, Any]:
    wiki_name = parse_wiki(wiki)
    revision = parse_rev_id(rev_id)
    doc = _services().edits.get_edit(wiki_name, revision)
    if doc is None:
        return _error(f"no edit {revision} on {wiki_name}", 404)
    return doc


@api_v1.get("/pages/latest")
def latest_change() -> tuple[Response, int] | dict[str, Any]:
    wiki = parse_wiki(request.args.get("wiki", ""))
    title = parse_title(request.args.get("title"))
    doc = _services().edits.latest_change(wiki, title)
    if doc is None:
        return _error(f"no change of {title!r} on {wiki}", 404)
    return doc


@service.get("/health")
def health() -> tuple[Response, int]:
    services = _services()
    results, age = services.health.results()
    ok = is_healthy(results)
    body: dict[str, Any] = {"status": "ok" if ok else "degraded", "dependencies": results,
                            "age_seconds": round(age, 3)}
    if ok:
        body["pipeline"] = _pipeline_state(services)
        if body["pipeline"]["state"] == "starting":
            body["status"] = "starting"
    return jsonify(body), 200 if ok else 503


def _pipeline_state(services: Services) -> dict[str, Any]:
    try:
        return queries.pipeline_state(services.stats)
    except DependencyUnavailable:
        return {"state": "starting", "reason": "the counters could not be read just now"}


@service.get("/")
def dashboard() -> Response:
    return current_app.send_static_file("index.html")


@service.get("/openapi.json")
def openapi() -> Response:
    return current_app.send_static_file("openapi.json")


def register_error_handlers(app: Flask) -> None:
    """Every error answers JSON `{"error": message}`, unknown routes and wrong methods included, and every answer
    carries the security headers. A dependency's failure is logged in full and answered in words that name no
    internal address."""

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

    @app.after_request
    def _secure(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def public_message(message: str) -> str:
    """`message` without anything that locates a server (the adapters' messages should hold none already)."""
    return _ADDRESS.sub("(address withheld)", message)[:300]


def _error(message: str, status: int) -> tuple[Response, int]:
    return jsonify({"error": message}), status
