"""`/v1/control/*`: the operator's endpoints, behind a bearer token (`WIKITIDE_CONTROL_TOKEN`).

401 without an `Authorization: Bearer` header, 403 with a wrong token (or when the server has no token: control is
then off). Every call is logged (method, path, client address, status; never the token) on the `api.control`
logger. The work is `api.control_plane.ControlPlane`'s.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from api.control_plane import (
    Conflict,
    ControlPlane,
    NotFound,
    decode_cursor,
    parse_fixed_payload,
    parse_letter_id,
)
from api.errors import InvalidParameter
from api.params import parse_limit
from wikitide.events import REASONS

logger = logging.getLogger("api.control")

CONTROL = "wikitide_control"
DEAD_LETTER_LIMIT = (50, 200)
# A fixed record must fit a Kinesis record (1 MiB) with its envelope; a body past this is refused with 413.
MAX_BODY_BYTES = 2 * 1024 * 1024
PROCESSING_ERROR = "processing_error"
DEAD_LETTER_REASONS = (*REASONS, PROCESSING_ERROR)

control = Blueprint("control", __name__, url_prefix="/v1/control")


def _plane() -> ControlPlane:
    """Built on first use (`create_app` stores how): an app whose control is never called reads no stack output."""
    plane: ControlPlane = current_app.extensions[CONTROL]["plane"]()
    return plane


@control.before_request
def _authorize() -> tuple[Response, int] | None:
    g.control_caller = request.remote_addr or "-"
    token: str | None = current_app.extensions[CONTROL]["token"]
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        response = jsonify({"error": "control endpoints need an Authorization: Bearer <token> header"})
        response.headers["WWW-Authenticate"] = 'Bearer realm="wikitide control"'
        return response, 401
    if token is None:
        return jsonify({"error": "control is off on this server (no WIKITIDE_CONTROL_TOKEN)"}), 403
    if not hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8")):
        return jsonify({"error": "wrong control token"}), 403
    return None


@control.after_request
def _log(response: Response) -> Response:
    level = logging.INFO if response.status_code < 400 else logging.WARNING
    logger.log(level, "control %s %s from %s: %d", request.method, request.path, g.get("control_caller", "-"),
               response.status_code)
    return response


@control.errorhandler(Conflict)
def _conflict(exc: Conflict) -> tuple[Response, int]:
    return jsonify({"error": str(exc)}), 409


@control.errorhandler(NotFound)
def _missing(exc: NotFound) -> tuple[Response, int]:
    return jsonify({"error": str(exc)}), 404


@control.get("/status")
def status() -> dict[str, Any]:
    return _plane().status()


@control.post("/producer/pause")
def pause() -> dict[str, Any]:
    return {"producer": _plane().set_paused(True, g.control_caller)}


@control.post("/producer/resume")
def resume() -> dict[str, Any]:
    return {"producer": _plane().set_paused(False, g.control_caller)}


@control.post("/stream/scale")
def scale() -> tuple[dict[str, Any], int]:
    body = request.get_json(silent=True)
    shards = body.get("shards") if isinstance(body, dict) else None
    if type(shards) is not int or not 1 <= shards <= 1024:
        raise InvalidParameter('shards: send a JSON body {"shards": N} with N an integer from 1 to 1024')
    return _plane().scale(shards), 202


@control.get("/dead-letters")
def dead_letters() -> dict[str, Any]:
    reason = request.args.get("reason")
    if reason is not None and reason not in DEAD_LETTER_REASONS:
        raise InvalidParameter(f"reason must be one of {', '.join(DEAD_LETTER_REASONS)}, got {reason[:80]!r}")
    default, maximum = DEAD_LETTER_LIMIT
    limit = parse_limit(request.args.get("limit"), default=default, maximum=maximum)
    cursor = request.args.get("cursor")
    decode_cursor(cursor)  # a cursor no page handed out is refused here, naming the parameter
    return _plane().dead_letters(reason, limit, cursor)


@control.post("/dead-letters/<letter_id>/replay")
def replay(letter_id: str) -> tuple[dict[str, Any], int]:
    letter = parse_letter_id(letter_id)
    raw = request.get_data(cache=False)  # at most MAX_BODY_BYTES (create_app sets Flask's MAX_CONTENT_LENGTH)
    try:
        body = json.loads(raw) if raw.strip() else None
    except ValueError as exc:
        raise InvalidParameter("payload: the body must be JSON") from exc
    return _plane().replay(letter, parse_fixed_payload(body), g.control_caller), 202
