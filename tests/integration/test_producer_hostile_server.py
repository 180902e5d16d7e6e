"""A real `wikitide produce` against a hostile SSE server, and the SSE client against redirects.

The server sends recorded events with three hostile frames among them: a 1.2 MB edit whose bulk is in `tags`, a
frame nested 100,000 deep, and a `data:` line that never ends. The producer keeps running, its memory stays
bounded, every good event after them reaches Kinesis, and `wikitide producer-status` shows what was rejected.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import boto3
import psutil
import pytest

from producer.frames import Frame, load_frames
from producer.sse_frames import DEFAULT_MAX_FRAME_BYTES
from producer.sse_source import ReconnectPolicy, read_events
from tests.conftest import RECENTCHANGE
from tests.integration.faulty_sse import EndlessLine, FaultySSE
from tests.integration.test_kinesis_writer import _read_all
from tests.quiet_http import QuietThreadingHTTPServer
from wikitide.errors import ConfigError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
# Far above the producer's own size (about 100 MB here) and far below what holding the endless line would take.
RSS_CEILING = 400 * 1024 * 1024


def _hostile_stream() -> tuple[list[Frame | EndlessLine], dict]:
    frames: list[Frame | EndlessLine] = list(
        load_frames(RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson")[:300])
    events = (json.loads(f.data) for f in frames if isinstance(f, Frame))
    base = next(event for event in events if event.get("type") == "edit")
    big = {**base, "meta": {**base["meta"], "id": "hostile-big-edit"}, "title": "Hostile big edit",
           "tags": ["t" * 1000] * 1200}
    frames.insert(50, Frame(data=json.dumps(big), id="hostile-big"))
    frames.insert(120, Frame(data="[" * 100_000 + "]" * 100_000, id="hostile-deep"))
    frames.insert(200, EndlessLine(id="hostile-endless"))
    return frames, big


def _produce(source: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "wikitide", "produce", "--source", source, "--linger", "0.05"]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _saved(table: str, source: str) -> dict | None:
    item = boto3.client("dynamodb").get_item(TableName=table, Key={"source": {"S": source}}).get("Item")
    return item


def test_hostile_frames_neither_stop_the_producer_nor_hold_back_the_events_after_them(provisioned) -> None:
    frames, big = _hostile_stream()
    last_id = frames[-1].id
    env = {**os.environ, "WIKITIDE_STACK": provisioned.stream_name.removesuffix("-changes")}
    with FaultySSE(frames, script=[]) as server:
        source = f"sse:{server.url}"
        process = _produce(source, env)
        peak_rss = 0
        try:
            deadline = time.monotonic() + 180
            while True:
                assert process.poll() is None, process.stderr.read().decode()[-3000:] if process.stderr else ""
                peak_rss = max(peak_rss, psutil.Process(process.pid).memory_info().rss)
                item = _saved(provisioned.producer_state_table, source)
                if item and item["last_event_id"]["S"] == last_id:
                    break
                assert time.monotonic() < deadline, f"position stuck at {item and item['last_event_id']}"
                time.sleep(0.1)
            assert process.poll() is None  # still running after every hostile frame
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=20)
        assert process.returncode == 0, stderr.decode()[-3000:]
        # The endless line really went past the limit, and the producer resumed after it instead of reading on.
        assert server.endless_bytes > DEFAULT_MAX_FRAME_BYTES
        assert "hostile-endless" in server.connections
    assert peak_rss < RSS_CEILING, peak_rss

    stored = [json.loads(data) for data in _read_all(boto3.client("kinesis"), provisioned.stream_name)]
    expected = {json.loads(f.data)["meta"]["id"] for f in frames if isinstance(f, Frame) and f.id != "hostile-deep"}
    assert {event["meta"]["id"] for event in stored} == expected
    cut = [event for event in stored if event["meta"]["id"] == "hostile-big-edit"]
    assert cut and all(event["wikitide_truncated"] == ["tags"] for event in cut)
    assert cut[0]["revision"] == big["revision"] and cut[0]["title"] == big["title"]

    status = subprocess.run([sys.executable, "-m", "wikitide", "producer-status", "--source", source], cwd=REPO,
                            env=env, capture_output=True, check=True, timeout=60)
    shown = json.loads(status.stdout)
    assert shown["rejected"] == {"oversized": 1, "too_deep": 1}
    assert shown["truncated"] == 1
    assert shown["last_event_id"] == last_id


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made by the openssl command line."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class _Server:
    """An HTTP(S) server on 127.0.0.1: `/go` redirects to `location`, anything else serves one SSE frame."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.location = ""
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:  # noqa: N802
                server.paths.append(self.path)
                if self.path == "/go":
                    self.send_response(302)
                    self.send_header("Location", server.location)
                    self.end_headers()
                    self.wfile.write(b"x" * 100_000)  # a redirect body is never read
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.wfile.write(Frame(data='{"meta": {"id": "m1"}}', id="one").encode())

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = QuietThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def servers(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[_Server, _Server]]:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # httpx trusts the test certificate through it
    secure, plain = _Server(tls=certificate), _Server()
    try:
        yield secure, plain
    finally:
        for server in (secure, plain):
            server.httpd.shutdown()
            server.httpd.server_close()


def _first_event(url: str) -> object:
    stop = threading.Event()
    events = read_events(url, "wikitide-tests", policy=ReconnectPolicy(base=0.01, max_delay=0.1, max_failures=3),
                         should_stop=stop.is_set)
    try:
        return next(events)
    finally:
        events.close()


def test_a_redirect_from_https_to_http_is_refused(servers: tuple[_Server, _Server]) -> None:
    secure, plain = servers
    secure.location = plain.url("/stream")
    with pytest.raises(ConfigError, match="https down to http"):
        _first_event(secure.url("/go"))
    assert secure.paths == ["/go"]
    assert plain.paths == []  # nothing was ever asked of the plain server


def test_redirects_that_keep_https_or_start_from_http_are_followed(servers: tuple[_Server, _Server]) -> None:
    secure, plain = servers
    secure.location = secure.url("/stream")
    assert _first_event(secure.url("/go")).id == "one"
    plain.location = secure.url("/stream")
    assert _first_event(plain.url("/go")).id == "one"
    plain.location = "/stream"  # relative, same server
    assert _first_event(plain.url("/go")).id == "one"
