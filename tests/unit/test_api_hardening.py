"""What any client meets at the edges: JSON for every error, no internal address in any answer, the security
headers, `/health` reusing its checks. A fresh app over fakes per test; gunicorn's side is in
`tests/integration/test_api_server.py`."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from flask.testing import FlaskClient
from gunicorn.http import errors as gunicorn_errors

from api import create_app
from api.headers import SECURITY_HEADERS
from api.health import HealthCache, run_checks
from api.ports import HealthChecks
from api.serving import error_answer, error_bytes
from tests.unit.api_fakes import EmptyStats
from wikitide.errors import ConfigError, DependencyUnavailable
from wikitide.settings import Settings

ADDRESS_MARKS = ("127.0.0.1", "10.1.2.3", "http://", ":4566", ":6380", "localhost")


class Stats(EmptyStats):
    """A `StatsStore` whose reads raise `failure` when one is set."""

    def __init__(self, failure: BaseException | None = None) -> None:
        self.failure = failure

    def latest_minute(self) -> int | None:
        if self.failure is not None:
            raise self.failure
        return 100


class Edits:
    def get_edit(self, wiki: str, rev_id: int) -> dict[str, Any] | None:
        raise RuntimeError("an unforeseen bug at /srv/app/api/secret.py line 12")

    def latest_change(self, wiki: str, title: str) -> dict[str, Any] | None:
        return None

    def page_changes(self, wiki: str, title: str, limit: int) -> list[dict[str, Any]]:
        return []


def client(stats: Stats | None = None, checks: HealthChecks | None = None, cache: float = 0.0) -> FlaskClient:
    app = create_app(stats=stats or Stats(), edits=Edits(), health_checks=checks or {}, health_cache_seconds=cache)
    return app.test_client()


def unavailable_from(cause: BaseException, message: str) -> DependencyUnavailable:
    try:
        raise DependencyUnavailable(message) from cause
    except DependencyUnavailable as exc:
        return exc


def test_a_wrong_method_is_405_in_json_with_its_allow_header() -> None:
    response = client().post("/v1/stats?window=1m")
    assert response.status_code == 405
    assert response.is_json and "not allowed" in response.get_json()["error"]
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_an_unknown_route_is_404_in_json() -> None:
    for path in ("/v2/stats", "/v1/stats/extra", "/v1//stats", "/nothing.html"):
        response = client().get(path)
        assert response.status_code == 404, path
        assert response.is_json and response.get_json()["error"], path


def test_an_unforeseen_error_is_500_in_json_without_its_detail() -> None:
    response = client().get("/v1/edits/enwiki/5")
    assert response.status_code == 500
    assert response.is_json
    text = response.get_data(as_text=True)
    assert "secret.py" not in text and "Traceback" not in text and "unforeseen" not in text


@pytest.mark.parametrize("failure", [
    unavailable_from(EndpointConnectionError(endpoint_url="http://127.0.0.1:4566/"), "DynamoDB: querying failed"),
    unavailable_from(redis.ConnectionError("Error 111 connecting to 127.0.0.1:6380."), "Redis: reading failed"),
    # An adapter that still put its cause in the message: the answer withholds the address anyway.
    DependencyUnavailable('dynamodb: Could not connect to the endpoint URL: "http://10.1.2.3:4566/"'),
    DependencyUnavailable("redis: Error 111 connecting to localhost:6380. Connection refused."),
])
def test_an_unavailable_dependency_is_503_naming_what_failed_but_no_address(failure: BaseException) -> None:
    response = client(Stats(failure)).get("/v1/stats?window=1h")
    assert response.status_code == 503
    message = response.get_json()["error"]
    assert not any(mark in message for mark in ADDRESS_MARKS), message
    assert message.lower().startswith(("dynamodb", "redis")) and "try again" in message
    assert response.headers["Retry-After"] == "5"


@pytest.mark.parametrize("path", ["/v1/stats?window=1m", "/nowhere", "/health", "/", "/static/dashboard.js"])
def test_every_answer_carries_the_security_headers(path: str) -> None:
    response = client().get(path)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, (path, name)
    response.close()


def test_health_failures_are_described_without_addresses() -> None:
    def endpoint_down() -> None:
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:4568/")

    def redis_down() -> None:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6380. Connection refused.")

    def slow() -> None:
        raise ReadTimeoutError(endpoint_url="http://127.0.0.1:5005/")

    def refused() -> None:
        raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "arn:aws:... not found"}},
                          "DescribeStreamSummary")

    results = run_checks({"kinesis": endpoint_down, "redis": redis_down, "dynamodb": slow, "stream": refused})
    assert results["kinesis"]["error"] == "could not be reached"
    assert results["redis"]["error"] == "could not be reached"
    assert results["dynamodb"]["error"] == "did not answer in time"
    assert results["stream"]["error"] == "refused the request (ResourceNotFoundException)"
    assert not any(mark in json.dumps(results) for mark in ADDRESS_MARKS)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_health_checks_are_reused_for_their_ttl_then_run_again() -> None:
    calls: list[str] = []
    clock = Clock()
    cache = HealthCache({"kinesis": lambda: calls.append("kinesis")}, ttl=5.0, clock=clock)
    for _ in range(50):
        results, age = cache.results()
        assert results["kinesis"]["ok"] is True
    assert calls == ["kinesis"] and age == 0.0
    clock.now += 4.9
    assert cache.results()[1] == pytest.approx(4.9) and len(calls) == 1
    clock.now += 0.1
    assert cache.results()[1] == 0.0 and len(calls) == 2


def test_callers_arriving_during_a_round_share_it() -> None:
    calls: list[int] = []
    started, release = threading.Event(), threading.Event()

    def slow_check() -> None:
        calls.append(1)
        started.set()
        release.wait(10)

    cache = HealthCache({"kinesis": slow_check}, ttl=5.0)
    threads = [threading.Thread(target=cache.results) for _ in range(8)]
    threads[0].start()
    assert started.wait(10)
    for thread in threads[1:]:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(10)
    assert calls == [1]


def test_the_health_route_answers_from_the_cache() -> None:
    calls: list[float] = []
    api = client(checks={"kinesis": lambda: calls.append(time.monotonic())}, cache=60.0)
    bodies = [api.get("/health").get_json() for _ in range(20)]
    assert len(calls) == 1
    assert all(body["status"] == "ok" for body in bodies)
    assert bodies[0]["age_seconds"] <= bodies[-1]["age_seconds"]


def test_the_health_cache_is_a_setting() -> None:
    assert Settings.from_env({}).health_cache_seconds == 5.0
    assert Settings.from_env({"WIKITIDE_HEALTH_CACHE_SECONDS": "0"}).health_cache_seconds == 0.0
    assert Settings.from_env({"WIKITIDE_HEALTH_CACHE_SECONDS": "2.5"}).health_cache_seconds == 2.5
    for bad in ("-1", "soon", "nan", "inf", "99999"):
        with pytest.raises(ConfigError, match="WIKITIDE_HEALTH_CACHE_SECONDS"):
            Settings.from_env({"WIKITIDE_HEALTH_CACHE_SECONDS": bad})


class Limits:
    limit_request_line = 4094
    limit_request_fields = 100
    limit_request_field_size = 8190


@pytest.mark.parametrize(("exc", "status"), [
    (gunicorn_errors.LimitRequestLine(5000, 4094), 414),
    (gunicorn_errors.LimitRequestHeaders("limit request headers fields"), 431),
    (gunicorn_errors.InvalidRequestLine("GET\x00 /"), 400),
    (gunicorn_errors.InvalidHeaderName("X Bad"), 400),
    (gunicorn_errors.UnsupportedTransferCoding("gzip"), 501),
    (gunicorn_errors.InvalidResponseHeader("X-Bad\r\n"), 500),
    (RuntimeError("worker bug at /srv/x.py"), 500),
])
def test_gunicorn_errors_are_answered_in_json(exc: BaseException, status: int) -> None:
    answered, message = error_answer(exc, Limits())
    raw = error_bytes(answered, message)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert answered == status
    assert lines[0].startswith(f"HTTP/1.1 {status} ")
    assert headers["Content-Type"] == "application/json"
    assert int(headers["Content-Length"]) == len(body)
    assert json.loads(body) == {"error": message}
    assert "/srv/" not in message
    assert all(headers[name] == value for name, value in SECURITY_HEADERS.items())


def test_gunicorns_master_imports_no_client_library() -> None:
    """gunicorn's master reads `api.serving` (and so `api`) before the gevent worker patches `ssl`: a client library
    imported there (redis, botocore, urllib3) keeps the unpatched `ssl` and the worker dies on its first TLS context."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, api.serving; print('\\n'.join(sys.modules))"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2],
    ).stdout.split()
    assert [name for name in ("redis", "botocore", "urllib3", "boto3") if name in loaded] == []


def test_the_gevent_worker_lets_other_connections_run_after_each_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    # A connection whose next request is always already there (a fast client) never blocks on its socket, so only
    # this yield lets the worker's other connections be answered in between (README, API benchmark: p99 87 -> 2.4 ms).
    import gevent
    from gunicorn.workers.ggevent import GeventWorker

    from api.serving import JsonErrorGeventWorker

    order: list[str] = []

    def answer(self: Any, listener_name: Any, req: Any, sock: Any, addr: Any) -> bool:
        order.append("answered")
        return True

    monkeypatch.setattr(GeventWorker, "handle_request", answer)
    worker = JsonErrorGeventWorker.__new__(JsonErrorGeventWorker)

    def keep_answering() -> None:
        for _ in range(3):
            assert worker.handle_request("listener", object(), object(), ("127.0.0.1", 1)) is True

    def other_connection() -> None:
        for _ in range(3):
            order.append("other")
            gevent.sleep(0)

    gevent.joinall([gevent.spawn(keep_answering), gevent.spawn(other_connection)], timeout=10, raise_error=True)
    assert order == ["answered", "other", "answered", "other", "answered", "other"]


def test_a_security_header_an_answer_sets_itself_is_kept_and_not_doubled() -> None:
    from flask import Flask

    from api.headers import SecurityHeaders

    app = Flask(__name__)

    @app.get("/framed")
    def framed() -> tuple[str, int, dict[str, str]]:
        return "ok", 200, {"x-frame-options": "SAMEORIGIN"}

    app.wsgi_app = SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]
    response = app.test_client().get("/framed")
    assert response.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert response.headers["Referrer-Policy"] == SECURITY_HEADERS["Referrer-Policy"]


def test_ensure_sync_inspects_each_function_once_and_takes_any_callable(monkeypatch: pytest.MonkeyPatch) -> None:
    from apiflask import APIFlask

    from api.openapi import DocumentedFlask

    inspected: list[object] = []
    original = APIFlask.ensure_sync

    def counting(self: APIFlask, func: Any) -> Any:
        inspected.append(func)
        return original(self, func)

    monkeypatch.setattr(APIFlask, "ensure_sync", counting)
    app = DocumentedFlask(__name__)

    def hook() -> None:
        return None

    assert [app.ensure_sync(hook) for _ in range(3)] == [hook] * 3
    assert inspected == [hook]

    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self) -> None:
            return None

    unhashable = Unhashable()
    assert app.ensure_sync(unhashable) is unhashable
