"""Response headers every answer carries, from the app (`SecurityHeaders`, installed by `api.create_app`) and from
gunicorn itself (`api.serving`).

The API serves JSON and one static dashboard that loads only its own files, so the browser may load nothing
from elsewhere, frame nothing and be framed by nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_LOWERED = tuple((name.lower(), name, value) for name, value in SECURITY_HEADERS.items())


class SecurityHeaders:
    """WSGI middleware: every answer of the wrapped app gets `SECURITY_HEADERS`, except a header the answer sets
    itself. Added to the header list as the answer starts: Flask's `after_request` with Werkzeug's
    `Headers.setdefault` (which walks the headers and raises a KeyError for each missing name) cost a kept answer
    3 µs of its 86 in the app (faster machine kind; `benchmarks/api_request_cost.py` measures the app alone)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            headers.extend((name, value) for lowered, name, value in _LOWERED if lowered not in present)
            return start_response(status, headers, exc_info)

        return self._app(environ, start)
