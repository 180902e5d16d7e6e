"""Response headers every answer carries, from the app (`api.routes`) and from gunicorn itself (`api.serving`).

The API serves JSON and one static dashboard that loads only its own files, so the browser may load nothing
from elsewhere, frame nothing and be framed by nothing.
"""

from __future__ import annotations

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "Cross-Origin-Opener-Policy": "same-origin",
}
