"""Tries are counted where they arrive, at a server that always fails: one retry loop per call site, never two."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from tests.integration.hanging_proxy import HangingProxy
from tests.quiet_http import QuietThreadingHTTPServer
from wikitide import aws, retry
from wikitide.errors import DependencyUnavailable
from wikitide.redis_client import make_redis
from wikitide.settings import Settings

pytestmark = pytest.mark.integration


class FailingDynamoDB:
    """Answers every request with a retryable 500, and counts them."""

    def __init__(self) -> None:
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.requests += 1
                body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
                                   "message": "always failing"}).encode()
                self.send_response(500)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._http = QuietThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


@pytest.fixture
def failing(monkeypatch: pytest.MonkeyPatch) -> Iterator[FailingDynamoDB]:
    server = FailingDynamoDB()
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    retry.set_testing(True)
    yield server
    retry.set_testing(False)
    server.close()


def test_an_adapter_client_under_a_policy_makes_exactly_the_policys_tries(failing: FailingDynamoDB) -> None:
    client = aws.make_adapter_client(Settings.from_env(), "dynamodb")
    policy = retry.Policy("test", attempts=3, deadline=60)
    with pytest.raises(DependencyUnavailable):
        aws.call(lambda: client.describe_table(TableName="t"), what="describe", policy=policy)
    assert failing.requests == 3


def test_a_direct_client_makes_botocores_tries_only(failing: FailingDynamoDB) -> None:
    client = aws.make_client(Settings.from_env(), "dynamodb")
    with pytest.raises(Exception, match="InternalServerError"):
        client.describe_table(TableName="t")
    assert failing.requests == aws.SDK_RETRY_ATTEMPTS


def test_a_redis_that_never_answers_costs_one_timeout_per_command() -> None:
    # Hanging from the start, the proxy never dials its upstream: a server that accepts and never answers.
    with HangingProxy("127.0.0.1", 1) as proxy:
        proxy.hang()
        client = make_redis(f"redis://127.0.0.1:{proxy.port}/0", retries=1, socket_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(Exception, match="Timeout"):
            client.ping()
        elapsed = time.monotonic() - started
    assert proxy.held == 1  # one try: redis-py's own retries (10 by default) would have sent more
    assert elapsed < 0.5 * 3
