"""`GET /v1/stream`: the live feed as Server-Sent Events (`api.fanout`), in a blueprint of its own so that it has
its own rate limit (`api.limits`)."""

from __future__ import annotations

import itertools
from typing import Any

from apiflask import APIBlueprint, HTTPError
from flask import Response, current_app

from api import schemas
from api.fanout import sse_events
from api.ports import Services

live = APIBlueprint("live", __name__, url_prefix="/v1", tag="data")

_EXAMPLE = ('retry: 3000\n\nid: 1733130000000-0\ndata: {"wiki": "enwiki", "type": "edit", "title": "Main Page", '
            '"editor": "user", "byte_delta": 12, ...}\n\n')


@live.get("/stream")
@live.input(schemas.StreamQuery, location="query", arg_name="query")
@live.input(schemas.StreamHeaders, location="headers", arg_name="headers")
@live.doc(summary="Live stream of processed changes (Server-Sent Events), filtered and resumable",
          operation_id="streamChanges", responses={
              200: {"description": "An endless `text/event-stream`.",
                    "content": {"text/event-stream": {"schema": {"type": "string"}, "example": _EXAMPLE}}},
              400: "A parameter is wrong; the message names it.",
              404: "The live stream is not configured on this server.",
              503: "The live feed did not answer; retry after Retry-After seconds."})
def stream(query: dict[str, Any], headers: dict[str, Any]) -> Response:
    """Live stream of processed changes (Server-Sent Events), filtered and resumable.

    Every change the pipeline counted, enriched, as it is processed: one SSE event per change, `id:` its position
    in the live feed and `data:` the enriched change (the `Event` schema, as `/v1/edits/recent` lists them). The
    filters combine (all must match; several values of one filter: any). Reconnecting with `Last-Event-ID` (or
    `last_event_id`) delivers every matching change after that id that the feed still keeps (at least the newest
    100,000 changes, about 55 minutes of the live stream), in order, each once; an id older than that gets an
    `event: gap` first, whose data names `oldest_kept`. Without an id the stream starts with the next change.
    `: heartbeat` comments with an `id:` line come every 15 s of silence (they move Last-Event-ID past changes the
    filter left out); the server ends each connection after an hour and the client reconnects (`retry: 3000`).
    """
    header = headers["last_event_id"]
    last_event_id = header if header is not None else query["last_event_id"]
    services: Services = current_app.extensions["wikitide"]
    if services.feed is None or services.fanout is None:
        raise HTTPError(404, "the live stream is not configured on this server")
    events = sse_events(services.fanout, services.feed, query["matches"], last_event_id)
    first = next(events)  # joins the fan-out and checks the feed: a DependencyUnavailable here is a 503
    return Response(
        itertools.chain([first], events), mimetype="text/event-stream",
        # No cache may keep it, and a buffering proxy (nginx) must pass each event on at once.
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
