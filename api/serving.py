"""How gunicorn serves the API: `gunicorn -c python:api.serving 'api:create_app()'` (the CLI and the local stack
both do). The module-level names are gunicorn settings; `JsonErrorGeventWorker` is the worker class they name.

Worker class: gevent. `/v1/stream` holds a connection open for as long as its client listens (up to an hour, see
`api.fanout.StreamOptions`): with gunicorn's `gthread` worker each one holds a thread, so 2 workers of 8 threads
served 16 stream clients and then nothing else (measured by `benchmarks/stream_fanout.py --worker-class gthread`).
gevent gives every connection a greenlet of its own, up to `worker_connections` per worker; Redis and AWS calls
yield while they wait (gunicorn monkey-patches the worker's sockets and threads before it loads the app), so
200 stream clients and the query endpoints share the same workers (measured by `benchmarks/stream_fanout.py`).
This module is read by gunicorn's master, before any patching: it and `api/__init__.py` import no client
library (redis, botocore, urllib3 import `ssl` names that gevent could no longer patch); `create_app` imports
them in the worker.

Slow clients: gunicorn's `sync` worker reads a request in the worker itself, so two clients sending a byte every
few seconds held both workers (a normal request waited 37 s). Under gevent a client that trickles holds only its
own greenlet. In production a buffering proxy or the load balancer in front (the ALB reads whole requests before
forwarding) still belongs there; see the README.

Errors gunicorn answers itself (a request line over `limit_request_line`: 414, too many or too large header
fields: 431, a malformed request: 400) are written by the worker as JSON, like every error of the app
(`JsonErrors`; `JsonErrorWorker` is the same for the `gthread` worker class).
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import gevent
from gunicorn import util
from gunicorn.http import errors
from gunicorn.workers.ggevent import GeventWorker
from gunicorn.workers.gthread import ThreadWorker

from api.headers import SECURITY_HEADERS

worker_class = "api.serving.JsonErrorGeventWorker"
# Connections one worker holds at once (stream clients, kept-alive and in-flight requests together).
worker_connections = 1000
# Threads per worker, used only by the `gthread` class (`--worker-class api.serving.JsonErrorWorker`).
threads = 8
# A worker that stops answering its arbiter for this long is replaced.
timeout = 30
# Kept-alive connections wait in the poller, not in a thread; after this many idle seconds they are closed.
keepalive = 5
# gunicorn's own defaults, named here because the README and the tests rely on them.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

_REASONS = {400: "Bad Request", 403: "Forbidden", 414: "URI Too Long", 417: "Expectation Failed",
            431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented"}


def error_answer(exc: BaseException, cfg: Any) -> tuple[int, str]:
    """The status and client-facing message of an error gunicorn met outside the app."""
    if isinstance(exc, errors.InvalidResponseHeader | errors.InvalidResponseHeaderName | errors.ConfigurationProblem):
        return 500, "internal error"
    if isinstance(exc, errors.LimitRequestLine):
        return 414, f"the request line is longer than {cfg.limit_request_line} bytes"
    if isinstance(exc, errors.LimitRequestHeaders):
        return 431, (
            f"the request has more than {cfg.limit_request_fields} header fields or one longer than "
            f"{cfg.limit_request_field_size} bytes"
        )
    if isinstance(exc, errors.UnsupportedTransferCoding):
        return 501, "unsupported transfer coding"
    if isinstance(exc, errors.ExpectationFailed):
        return 417, "unsupported Expect header"
    if isinstance(exc, errors.ForbiddenProxyRequest | ssl.SSLError):
        return 403, "request refused"
    if isinstance(exc, errors.ParseException):
        return 400, f"malformed HTTP request ({type(exc).__name__})"
    return 500, "internal error"


def error_bytes(status: int, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", "Connection: close",
            "Content-Type: application/json", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in SECURITY_HEADERS.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class JsonErrors:
    """Answers the errors a gunicorn worker meets before the app does in JSON instead of HTML."""

    cfg: Any
    log: Any

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        status, message = error_answer(exc, self.cfg)
        ip = addr[0] if addr else ""
        if status >= 500:
            self.log.exception("Error handling request from ip=%s", ip)
        else:
            self.log.warning("Invalid request from ip=%s: %s", ip, exc)
        try:
            util.write_nonblock(client, error_bytes(status, message))
        except OSError:
            self.log.debug("Failed to send error message.")


class JsonErrorWorker(JsonErrors, ThreadWorker):
    """gunicorn's threaded worker with JSON errors."""


class JsonErrorGeventWorker(JsonErrors, GeventWorker):
    """gunicorn's gevent worker with JSON errors, taking kept-alive connections in turn."""

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> bool:
        kept_alive: bool = super().handle_request(listener_name, req, sock, addr)
        # A greenlet yields only when its socket has nothing to read: a client that sends its next request as soon
        # as an answer arrives (wrk, or any pipelining client) kept the worker to itself while the other
        # connections' requests waited, up to a second at 50 connections (README, API benchmark; the unit test is
        # `tests/unit/test_api_hardening.py`).
        # Yielding after each answer serves the ready connections in turn.
        gevent.sleep(0)
        return kept_alive
