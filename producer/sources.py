"""Where the producer reads from. Every source is an SSE URL, so the real SSE client path always runs:
`live` (EventStreams), `sse:URL`, `replay:PATH` (a recording served by the built-in replay server) and
`synthetic` (generated, clearly labelled events served the same way)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx

from wikitide.errors import ConfigError

LIVE_URL = "https://stream.wikimedia.org/v2/stream/recentchange"
SYNTHETIC_RATE = 30.0


def user_agent(contact: str) -> str:
    """EventStreams refuses clients without a descriptive User-Agent (HTTP 403)."""
    from wikitide import __version__

    who = contact or "set WIKITIDE_CONTACT"
    return f"wikitide/{__version__} (https://github.com/wikitide/wikitide; {who}) python-httpx"


def reachable(url: str, agent: str, timeout: float = 5.0) -> bool:
    try:
        with httpx.stream("GET", url, headers={"User-Agent": agent}, timeout=timeout) as response:
            return response.status_code < 400
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def open_source(spec: str, *, speed: float = 1.0) -> Iterator[str]:
    """Yield the SSE URL to read for `spec`, running a local replay server for as long as it is needed."""
    if spec == "live":
        yield LIVE_URL
        return
    if spec.startswith("sse:"):
        url = spec[4:]
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"--source sse:URL needs an http(s) URL, got {url!r}")
        yield url
        return
    from producer.frames import load_frames
    from producer.replay import ReplayServer
    from producer.synthetic import synthetic_frames

    if spec.startswith("replay:"):
        path = Path(spec[7:])
        if not path.is_file():
            raise ConfigError(f"--source replay:PATH: no such file {path}")
        frames = load_frames(path)
        server = ReplayServer(lambda: frames, speed=speed)
    elif spec == "synthetic":
        # One timeline for every connection, so a resume by Last-Event-ID continues it rather than restarting.
        start, rate = datetime.now(UTC), SYNTHETIC_RATE * max(speed, 0.01)
        server = ReplayServer(lambda: synthetic_frames(start=start, rate=rate), rate=rate)
    else:
        raise ConfigError(f"unknown --source {spec!r}: use live, sse:URL, replay:PATH or synthetic")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
