"""moto's server as `moto_server` runs it, with the service lookup of each request remembered.

moto's dispatcher finds the backend of every request anew, under one lock shared by all request threads: it lists
moto's package directory (a `stat` for each of its 174 service folders) and tries its URL patterns in turn. Which
backend serves a host never changes while the server runs, so the answer is kept per host. Measured on the local
stack (py-spy on moto during `tests/integration/test_counters_fallback.py`): the directory listing alone was 5 % of
moto's CPU, and request threads queued on the lock behind it. The access log line of every request is left out too
(errors are still logged). Everything else is moto's own `moto.server.main`; `benchmarks/moto_dispatch.py` measures
the difference.

Run as `python -m wikitide.localstack.moto_server -H HOST -p PORT`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from types import FrameType
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class RememberingDispatcher(DomainDispatcherApplication):
    """`get_backend_for_host` answers from a dictionary after the first request of each host (the host name
    is the service and region moto infers from the request, so the dictionary holds a few dozen entries)."""

    def __init__(self) -> None:
        super().__init__(create_backend_app)
        self._backends: dict[str | None, Any] = {}

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
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # moto builds some URLs it returns from it
    signal.signal(signal.SIGINT, _exit)
    signal.signal(signal.SIGTERM, _exit)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    run_simple(args.host, args.port, RememberingDispatcher(), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
