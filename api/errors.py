"""The errors the API raises on purpose; the routes turn each into a JSON status."""

from __future__ import annotations

from wikitide.errors import WikitideError


class ApiError(WikitideError):
    """Base of every error the API package raises."""


class InvalidParameter(ApiError, ValueError):
    """A query or path parameter the client got wrong: answered with 400 and this message."""
