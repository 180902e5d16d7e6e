"""The tests' own HTTP servers (fault proxies, hostile SSE servers): `http.server.ThreadingHTTPServer` without the
traceback it prints from a handler thread for every client that hung up.

A client hanging up is what these tests do on purpose (a processor killed mid-request, a producer that drops a
hostile stream), so it is not an error. Printing tracebacks from threads also runs into a CPython 3.11 fault:
formatting a traceback parses source with `ast` (the caret lines), and two threads doing it at once can raise
`SystemError: AST constructor recursion depth mismatch` (python/cpython#106905) in whichever one was pytest
formatting a failure, which turns that failure into an INTERNALERROR that hides every result of the worker.
Other handler errors are still reported, on one line.
"""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer
from typing import Any


class QuietThreadingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            return
        sys.stderr.write(f"test HTTP server: {client_address}: {error!r}\n")
