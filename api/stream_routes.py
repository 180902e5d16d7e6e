"""`GET /v1/stream`: the live feed as Server-Sent Events (`api.fanout`), in a blueprint of its own so that it has
its own rate limit (`api.limits`)."""

from __future__ import annotations

import itertools

from flask import Blueprint, Response, current_app, jsonify, request

from api.fanout import sse_events
from api.filters import parse_change_filter
from api.params import parse_last_event_id
from api.ports import Services

live = Blueprint("live", __name__, url_prefix="/v1")


@live.get("/stream")
def stream() -> Response | tuple[Response, int]:
    """Server-Sent Events of the counted changes the filters match, resumable with `Last-Event-ID`."""
    keep = parse_change_filter(request.args)
    header = request.headers.get("Last-Event-ID")
    last_event_id = parse_last_event_id(header if header is not None else request.args.get("last_event_id"))
    services: Services = current_app.extensions["wikitide"]
    if services.feed is None or services.fanout is None:
        return jsonify({"error": "the live stream is not configured on this server"}), 404
    events = sse_events(services.fanout, services.feed, keep, last_event_id)
    first = next(events)  # joins the fan-out and checks the feed: a DependencyUnavailable here is a 503
    return Response(
        itertools.chain([first], events), mimetype="text/event-stream",
        # No cache may keep it, and a buffering proxy (nginx) must pass each event on at once.
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
