"""How the API describes itself: APIFlask's settings for the document it generates from `api.schemas` at
`/openapi.json`, and what no single route declares (every endpoint's rate limit, the control token, the request
bodies the control routes read themselves, the document's own path)."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from typing import Any

from apiflask import APIFlask
from apispec import APISpec

from api import schemas

TITLE = "wikitide API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Real-time statistics over Wikipedia RecentChanges, read from Redis (windows, pages, recent edits) and DynamoDB "
    "(single edits). Windows are counted in event time: W one-minute buckets ending with the newest processed "
    "minute. Every endpoint is rate-limited per client (429 with Retry-After; see the README's *Rate limits*)."
)
# Functions whose `ensure_sync` answer is remembered: the app's views, hooks and handlers are a few dozen.
MAX_SYNCED = 1000
SECURITY_SCHEME = "controlToken"
TOKEN_DESCRIPTION = ("The server's WIKITIDE_CONTROL_TOKEN. Without the header: 401; a wrong token, or a server "
                     "without one: 403.")
# The control routes read their bodies themselves (`api.control`): the document takes them from these schemas.
_BODIES = {"scaleStream": (schemas.ScaleBody, True), "replayDeadLetter": (schemas.ReplayBody, False)}


class DocumentedFlask(APIFlask):
    """APIFlask, without apispec's warning that a schema was registered twice: APIFlask registers a nested schema
    again as a route's answer, and `_one_name_per_schema` merges such copies, so the warning (once per gunicorn
    worker) says nothing a reader of the logs can act on. `_get_spec` is what every path to the document calls
    (APIFlask 3.1, pinned). `ensure_sync` remembers its answer per function."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._synced: dict[Callable[..., Any], Callable[..., Any]] = {}
        super().__init__(*args, **kwargs)

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        # Flask asks this of every hook and view on every request, each time inspecting the function
        # (`inspect.iscoroutinefunction`); the answer for a function does not change.
        try:
            synced = self._synced.get(func)
        except TypeError:  # a callable that cannot be a key (it defines `__eq__` without `__hash__`)
            return super().ensure_sync(func)
        if synced is None:
            synced = super().ensure_sync(func)
            if len(self._synced) < MAX_SYNCED:
                self._synced[func] = synced
        return synced

    def _get_spec(self, spec_format: str | None = None, force_update: bool = False) -> dict[Any, Any] | str:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".* has already been added to the spec", category=UserWarning)
            return super()._get_spec(spec_format, force_update)


def configure(app: APIFlask) -> None:
    app.config.update(
        # Swagger UI's bundle (`/docs`) reads OpenAPI 3.0 documents.
        OPENAPI_VERSION="3.0.3",
        DESCRIPTION=DESCRIPTION,
        VALIDATION_ERROR_STATUS_CODE=400,
        VALIDATION_ERROR_DESCRIPTION="A parameter is wrong; the message names it.",
        VALIDATION_ERROR_SCHEMA=schemas.Error,
        HTTP_ERROR_SCHEMA=schemas.Error,
        SECURITY_SCHEMES={SECURITY_SCHEME: {"type": "http", "scheme": "bearer", "description": TOKEN_DESCRIPTION}},
        AUTO_SERVERS=False,
        # Path parameters are declared by the routes' schemas, with their rules.
        AUTO_404_RESPONSE=False,
    )
    app.spec_processor(_complete)


def _complete(document: dict[Any, Any] | str) -> dict[Any, Any] | str:
    assert isinstance(document, dict)  # SPEC_FORMAT is json and SPEC_PROCESSOR_PASS_OBJECT off: a dict
    spec = _one_name_per_schema(document)
    error = {"$ref": "#/components/schemas/Error"}
    spec["paths"]["/openapi.json"] = {"get": {
        "summary": "This document", "operationId": "getOpenApi", "tags": ["service"],
        "responses": {"200": {"description": "The OpenAPI 3 document.",
                              "content": {"application/json": {"schema": {"type": "object"}}}}}}}
    for item in spec["paths"].values():
        for operation in item.values():
            operation["responses"].setdefault("429", {
                "description": "Too many requests from this client; retry after Retry-After seconds.",
                "content": {"application/json": {"schema": error}}})
            if operation.get("operationId") in _BODIES:
                schema, required = _BODIES[operation["operationId"]]
                operation["requestBody"] = {"required": required,
                                            "content": {"application/json": {"schema": _inline(schema)}}}
            if operation.get("security"):
                operation["responses"]["401"]["content"] = {"application/json": {"schema": error}}
    return spec


def _inline(schema: type[Any]) -> dict[str, Any]:
    """`schema` as the JSON Schema apispec writes for it."""
    from apispec.ext.marshmallow import MarshmallowPlugin

    plugin = MarshmallowPlugin()
    APISpec(TITLE, VERSION, "3.0.3", plugins=[plugin])
    assert plugin.converter is not None
    converted: dict[str, Any] = plugin.converter.schema2jsonschema(schema())  # type: ignore[no-untyped-call]
    return converted


def _one_name_per_schema(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` with each schema under one name: APIFlask registers a route's answer schema anew when apispec has
    already met it nested in another (`Event` in `RecentEdits`), as `Event1`; references to such a copy are
    pointed at the original and the copy dropped."""
    found = spec["components"]["schemas"]
    copies = {name: re.sub(r"\d+$", "", name) for name in found
              if re.sub(r"\d+$", "", name) in found and re.sub(r"\d+$", "", name) != name}
    copies = {name: original for name, original in copies.items() if found[name] == found[original]}
    if not copies:
        return spec
    text = json.dumps(spec)
    for name, original in copies.items():
        text = text.replace(f'"#/components/schemas/{name}"', f'"#/components/schemas/{original}"')
    merged: dict[str, Any] = json.loads(text)
    for name in copies:
        del merged["components"]["schemas"][name]
    return merged
