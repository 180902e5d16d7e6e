"""`PlannedLimiter` counts as Flask-Limiter does: the same requests, refused at the same hit, with the same headers,
whether a request went through the plan or through Flask-Limiter's own path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flask_limiter
import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient
from flask_limiter.util import get_remote_address

from api import create_app, limits
from api.limits import PlannedLimiter, RateLimits, ResolvedOnce
from tests.unit.fake_feed import FakeFeedLog
from tests.unit.test_api_control import FakePlane
from tests.unit.test_api_routes import FakeEdits, FakeStats

Request = tuple[str, str, dict[str, Any]]  # method, path, the test client's keyword arguments
OTHER_CLIENT = {"environ_base": {"REMOTE_ADDR": "10.0.0.2"}}
WRONG_TOKEN = {"headers": {"Authorization": "Bearer x"}}

API_REQUESTS: list[Request] = [
    *[("GET", "/v1/stats?window=1h", {})] * 4,
    ("GET", "/v1/stats?window=24h", OTHER_CLIENT),
    *[("GET", "/v1/pages/top?window=1h", {})] * 2,
    *[("GET", "/health", {})] * 3,
    ("GET", "/nowhere", {}),
    ("POST", "/v1/stats?window=1h", {}),
    ("GET", "/static/dashboard.js", {}),
    *[("GET", "/v1/control/status", WRONG_TOKEN)] * 3,
    ("POST", "/v1/control/producer/pause", WRONG_TOKEN),
    *[("GET", "/v1/trending?window=1h", {})] * 4,
]


class FlaskLimiterOnly(flask_limiter.Limiter):
    """Flask-Limiter as it comes: what `PlannedLimiter` must answer like."""


def api_client(limiter_class: type[flask_limiter.Limiter], monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    monkeypatch.setattr(limits, "PlannedLimiter", limiter_class)
    app = create_app(stats=FakeStats(), edits=FakeEdits(), health_checks={}, feed=FakeFeedLog(),
                     control_plane=FakePlane(), control_token="t",  # type: ignore[arg-type]
                     rate_limits=RateLimits(queries="3/minute", stream="1/minute", control="2/minute"))
    return app.test_client()


def answers(http: FlaskClient, requests: list[Request]) -> list[tuple[int, dict[str, str]]]:
    """Each answer's status and rate limit headers; the times (window end, retry after) to the second, as a
    request's second can differ between two runs."""
    seen = []
    for method, path, kwargs in requests:
        response = http.open(path, method=method, **kwargs)
        headers = {name: value for name, value in response.headers.items()
                   if name.startswith("X-RateLimit") or name == "Retry-After"}
        for timed in ("X-RateLimit-Reset", "X-RateLimit-Retry-After", "Retry-After"):
            if timed in headers:
                headers[timed] = "set"
        seen.append((response.status_code, headers))
        response.close()
    return seen


def flask_limiter_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The endpoints whose requests went through Flask-Limiter's own path, one entry per request."""
    taken: list[str] = []
    original = flask_limiter.Limiter._check_request_limit

    def counting(self: flask_limiter.Limiter, *args: Any, **kwargs: Any) -> None:
        from flask import request

        taken.append(str(request.endpoint))
        original(self, *args, **kwargs)

    monkeypatch.setattr(flask_limiter.Limiter, "_check_request_limit", counting)
    return taken


def test_the_api_answers_as_with_flask_limiter_alone_every_request_planned(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = answers(api_client(FlaskLimiterOnly, monkeypatch), API_REQUESTS)
    taken = flask_limiter_paths(monkeypatch)
    http = api_client(PlannedLimiter, monkeypatch)
    taken.clear()
    assert answers(http, API_REQUESTS) == expected
    # The comparison is with the plans: no request of the API needed Flask-Limiter's own path.
    assert taken == []
    statuses = [status for status, _ in expected]
    assert statuses[:4] == [200, 200, 200, 429] and 429 in statuses[-4:] and statuses.count(403) == 3
    assert expected[0][1] == {"X-RateLimit-Limit": "3", "X-RateLimit-Remaining": "2", "X-RateLimit-Reset": "set",
                              "X-RateLimit-Retry-After": "set"}


def tiny_app(limiter_class: type[flask_limiter.Limiter], **limiter_options: Any) -> tuple[Flask, flask_limiter.Limiter]:
    app = Flask(__name__)
    pages = Blueprint("pages", __name__)

    @pages.get("/page")
    def page() -> str:
        return "page"

    @app.route("/plain", methods=["GET", "POST"])
    def plain() -> str:
        return "plain"

    @app.get("/failing")
    def failing() -> tuple[str, int]:
        return "no", 500

    app.register_blueprint(pages)
    limiter = limiter_class(get_remote_address, app=app, headers_enabled=True, storage_uri="memory://",
                            **limiter_options)
    limiter.limit_manager = ResolvedOnce(limiter.limit_manager)
    limiter.limit("2/minute")(pages)
    return app, limiter


TINY_REQUESTS: list[Request] = [
    *[("GET", "/plain", {})] * 3, *[("POST", "/plain", {})] * 3, *[("GET", "/failing", {})] * 4,
    *[("GET", "/page", {})] * 3, ("GET", "/plain", OTHER_CLIENT),
]


@pytest.mark.parametrize(("options", "planned"), [
    ({"default_limits": ["2/minute", "5/hour"]}, True),
    ({"default_limits": ["2/minute"], "default_limits_per_method": True}, True),
    # Each of these Flask-Limiter decides per request: its own path counts them.
    ({"default_limits": ["2/minute"], "default_limits_deduct_when": lambda response: response.status_code == 200},
     False),
    ({"default_limits": ["2/minute"], "default_limits_exempt_when": lambda: False}, False),
    ({"default_limits": ["2/minute"], "default_limits_cost": lambda: 2}, False),
    ({"default_limits": ["2/minute"], "meta_limits": ["3/hour"]}, False),
], ids=["two-windows", "per-method", "deduct-when", "exempt-when", "callable-cost", "meta-limits"])
def test_limits_with_conditions_go_to_flask_limiter_and_all_answer_alike(
    options: dict[str, Any], planned: bool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = answers(tiny_app(FlaskLimiterOnly, **options)[0].test_client(), TINY_REQUESTS)
    taken = flask_limiter_paths(monkeypatch)
    app, _ = tiny_app(PlannedLimiter, **options)
    taken.clear()
    assert answers(app.test_client(), TINY_REQUESTS) == expected
    assert (taken == []) is planned, taken
    assert 429 in [status for status, _ in expected]


def test_a_request_filter_and_a_change_of_limits_apply_to_the_next_request() -> None:
    app, limiter = tiny_app(PlannedLimiter, default_limits=["2/minute"])
    http = app.test_client()
    assert [http.get("/plain").status_code for _ in range(3)] == [200, 200, 429]
    limiter.request_filter(lambda: True)
    assert http.get("/plain").status_code == 200
    app, limiter = tiny_app(PlannedLimiter, default_limits=["2/minute"])
    http = app.test_client()
    assert [http.get("/page").status_code for _ in range(3)] == [200, 200, 429]
    limiter.exempt(app.blueprints["pages"])
    answer = http.get("/page")
    assert answer.status_code == 200 and "X-RateLimit-Limit" not in answer.headers


def test_while_redis_cannot_be_reached_each_process_counts_in_memory() -> None:
    """The limiter's storage down: requests are answered, not refused, and counted in this process's memory."""
    uri, options = limits.redis_storage("redis://127.0.0.1:1/0", None, None)  # nothing listens on port 1
    app = create_app(stats=FakeStats(), edits=FakeEdits(), health_checks={},  # type: ignore[arg-type]
                     rate_limits=RateLimits(queries="3/minute", storage_uri=uri, storage_options=options))
    http = app.test_client()
    answers = [http.get("/v1/stats?window=1h") for _ in range(4)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert [answer.headers.get("X-RateLimit-Remaining") for answer in answers[:3]] == ["2", "1", "0"]
    (limiter,) = app.extensions["limiter"]
    assert limiter._storage_dead


def test_one_count_per_request_whichever_path() -> None:
    """Flask-Limiter's own hooks are not registered beside `PlannedLimiter`'s: a request is counted once."""
    app, _ = tiny_app(PlannedLimiter, default_limits=["10/minute"])
    before: Callable[..., Any] = app.before_request_funcs[None]  # type: ignore[assignment]
    assert len(before) == 1
    http = app.test_client()
    assert [http.get("/plain").headers["X-RateLimit-Remaining"] for _ in range(3)] == ["9", "8", "7"]


def test_methods_a_client_makes_up_add_no_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request that matched no route (404, 405) has no limits whatever its method; plans are kept per route."""
    http = api_client(PlannedLimiter, monkeypatch)
    for index in range(50):
        for path in ("/nowhere", "/v1/stats?window=1h"):
            assert http.open(path, method=f"M{index:03d}").status_code in (404, 405)
    (limiter,) = http.application.extensions["limiter"]
    assert len(limiter._plans) == 0
    http.get("/v1/stats?window=1h")
    assert list(limiter._plans) == [("api_v1.stats", "GET")]
