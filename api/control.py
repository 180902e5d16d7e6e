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

from apiflask import APIBlueprint
from flask import Response, current_app, g, jsonify, request

from api import schemas
from api.control_plane import Conflict, ControlPlane, NotFound, parse_fixed_payload
from api.errors import InvalidParameter
from api.openapi import SECURITY_SCHEME

logger = logging.getLogger("api.control")

CONTROL = "wikitide_control"
# A fixed record must fit a Kinesis record (1 MiB) with its envelope; a body past this is refused with 413.
MAX_BODY_BYTES = 2 * 1024 * 1024
_REFUSALS = {403: "A wrong token, or control is off on this server.",
             503: "The stack's service did not answer; retry after Retry-After seconds."}

control = APIBlueprint("control", __name__, url_prefix="/v1/control", tag="control")


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
@control.output(schemas.ControlAnswer, description="`stream`, `producer` and `dead_letters`; a part that cannot be "
                "read holds `error` instead.")
@control.doc(summary="Pipeline status for operators", operation_id="getControlStatus", security=SECURITY_SCHEME,
             responses=_REFUSALS)
def status() -> dict[str, Any]:
    """Pipeline status for operators.

    `stream`: the Kinesis stream's status and open shards and, per shard, what `wikitide workers --json` shows
    (parents, open, lease owner, checkpoint, `lag_ms`, `behind_ms`, `last_batch_age_ms`); `producer`: the pause
    flag (`paused`, `changed_at`, `changed_by`) and every saved producer position as `wikitide producer-status`
    shows it; `dead_letters`: counts by reason.
    """
    return _plane().status()


@control.post("/producer/pause")
@control.output(schemas.ControlAnswer, description="The flag now.")
@control.doc(summary="Pause the producer", operation_id="pauseProducer", security=SECURITY_SCHEME,
             responses=_REFUSALS)
def pause() -> dict[str, Any]:
    """Pause the producer.

    Sets the pause flag in the producer's state table: every running producer of the stack closes its
    EventStreams connection within about 2 s (it polls the flag) and sends nothing more; a producer started while
    paused stays paused.
    """
    return {"producer": _plane().set_paused(True, g.control_caller)}


@control.post("/producer/resume")
@control.output(schemas.ControlAnswer, description="The flag now.")
@control.doc(summary="Resume the producer", operation_id="resumeProducer", security=SECURITY_SCHEME,
             responses=_REFUSALS)
def resume() -> dict[str, Any]:
    """Resume the producer.

    Clears the pause flag: the producers reconnect with `Last-Event-ID` after the last event they read, so
    nothing is lost or repeated.
    """
    return {"producer": _plane().set_paused(False, g.control_caller)}


@control.post("/stream/scale")
@control.output(schemas.ControlAnswer, status_code=202, description="`from`, `to`, `status` (`UPDATING`, or the "
                "current status when the count is already `shards`).")
@control.doc(summary="Reshard the stream", operation_id="scaleStream", security=SECURITY_SCHEME,
             responses={**_REFUSALS, 400: "`shards` is missing or out of range.",
                        409: "The stream cannot be resharded now."})
def scale() -> tuple[dict[str, Any], int]:
    """Reshard the stream.

    `UpdateShardCount` with uniform scaling (at most double or half the open shards per call, as Kinesis allows);
    the KCL workers take the new shards' leases by themselves.
    """
    # The body (`schemas.ScaleBody` in the document) is read here: one that is no JSON at all is refused naming
    # `shards` too, and `true` is no shard count.
    body = request.get_json(silent=True)
    shards = body.get("shards") if isinstance(body, dict) and set(body) == {"shards"} else None
    if type(shards) is not int or not 1 <= shards <= 1024:
        raise InvalidParameter('shards: send a JSON body {"shards": N}, nothing else, with N an integer from 1 to 1024')
    return _plane().scale(shards), 202


@control.get("/dead-letters")
@control.input(schemas.DeadLettersQuery, location="query", arg_name="query")
@control.output(schemas.ControlAnswer, description="`items` and `next` (null at the end).")
@control.doc(summary="Dead letters, paged", operation_id="listDeadLetters", security=SECURITY_SCHEME,
             responses={**_REFUSALS, 400: "A parameter is wrong; the message names it."})
def dead_letters(query: dict[str, Any]) -> dict[str, Any]:
    """Dead letters, paged.

    Records the processor refused, in the table's order, without their payloads (`payload_preview`: the first
    300 characters). Pass `next` as `cursor` for the rest; a page can hold fewer than `limit` and still have a
    `next`.
    """
    return _plane().dead_letters(query["reason"], query["limit"], query["cursor"])


@control.post("/dead-letters/<letter_id>/replay")
@control.input(schemas.LetterPath, location="path", arg_name="path")
@control.output(schemas.ControlAnswer, status_code=202,
                description="`id`, `replayed_at`, `shard_id`, `sequence_number`, `fixed`.")
@control.doc(summary="Replay a dead letter", operation_id="replayDeadLetter", security=SECURITY_SCHEME,
             responses={**_REFUSALS, 400: "The id or the payload is wrong; the message says which.",
                        404: "No such dead letter.", 409: "It was replayed already."})
def replay(letter_id: str, path: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Replay a dead letter.

    Puts the record back into the stream, once: its stored payload, or the fixed record given as `payload`. The
    payload must now pass the processor's checks (else 400 with the reason); a dead letter already replayed gets
    409. The processor then counts the change once, like any other.
    """
    raw = request.get_data(cache=False)  # at most MAX_BODY_BYTES (create_app sets Flask's MAX_CONTENT_LENGTH)
    fixed = parse_fixed_payload(_json_object(raw)) if raw.strip() else None
    return _plane().replay(path["letter_id"], fixed, g.control_caller), 202


def _json_object(raw: bytes) -> dict[str, Any]:
    """A replay's body: a JSON object (`null` is no way to send none: send no body)."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvalidParameter("payload: the body must be JSON") from exc
    if not isinstance(body, dict):
        raise InvalidParameter("payload: the body must be a JSON object with at most the field `payload`")
    return body
