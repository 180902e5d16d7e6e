"""moto's server as `moto_server` runs it, with the service lookup of each request remembered.

moto's dispatcher finds the backend of every request anew, under one lock shared by all request threads: it lists
moto's package directory (a `stat` for each of its 174 service folders) and tries its URL patterns in turn. Which
backend serves a host never changes while the server runs, so the answer is kept per host. Measured on the local
stack (py-spy on moto during `tests/integration/test_counters_fallback.py`): the directory listing alone was 5 % of
moto's CPU, and request threads queued on the lock behind it. The access log line of every request is left out too
(errors are still logged). Everything else is moto's own `moto.server.main`; `benchmarks/moto_dispatch.py` measures
the difference.

`--preload SERVICE` builds that service's backend app in a thread as the server starts, rather than on its first
request: moto imports a backend's models then, and CloudFormation's import the models of every service it can
provision (2.1 s measured, on the path of `wikitide local up` before the workers could start).

`GET /_wikitide/calls` answers how many requests of each JSON-protocol action (`X-Amz-Target`, e.g.
`DynamoDB_20120810.UpdateItem`) the server took since it started: what `benchmarks/burst.py` divides by the events
a run processed, to show the pipeline's calls per event to moto.

Run as `python -m wikitide.localstack.moto_server -H HOST -p PORT`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections import Counter
from types import FrameType
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

CALLS_PATH = "/_wikitide/calls"


class RememberingDispatcher(DomainDispatcherApplication):
    """`get_backend_for_host` answers from a dictionary after the first request of each host (the host name
    is the service and region moto infers from the request, so the dictionary holds a few dozen entries)."""

    def __init__(self) -> None:
        super().__init__(create_backend_app)
        self._backends: dict[str | None, Any] = {}
        self._calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == CALLS_PATH and environ.get("REQUEST_METHOD") == "GET":
            with self._calls_lock:
                body = json.dumps(dict(self._calls)).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target:
            with self._calls_lock:
                self._calls[target] += 1
        return super().__call__(environ, start_response)

    def preload(self, services: list[str]) -> None:
        """Build each service's app now, outside the lock every request takes (a request for a service meanwhile
        waits for the same import, then finds the app or builds its own)."""
        for service in services:
            app = self.create_app(service)
            with self.lock:
                self.app_instances.setdefault(service, app)

    def get_backend_for_host(self, host: str | None) -> Any:
        # Called under the dispatcher's lock: no other thread changes the dictionary meanwhile.
        if host not in self._backends:
            self._backends[host] = super().get_backend_for_host(host)
        return self._backends[host]


def _exit(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--preload", action="append", default=[], metavar="SERVICE",
                        help="build this service's backend as the server starts (repeatable)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # moto builds some URLs it returns from it
    signal.signal(signal.SIGINT, _exit)
    signal.signal(signal.SIGTERM, _exit)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    dispatcher = RememberingDispatcher()
    if args.preload:
        threading.Thread(target=dispatcher.preload, args=(args.preload,), name="preload", daemon=True).start()
    run_simple(args.host, args.port, dispatcher, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
