"""Per-client rate limits: each class of endpoint its own limit, 429 in JSON with Retry-After, `off` for none."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from api import create_app
from api.limits import RateLimits
from tests.unit.fake_feed import FakeFeedLog
from tests.unit.test_api_control import FakePlane
from tests.unit.test_api_routes import FakeEdits, FakeStats
from wikitide.errors import ConfigError
from wikitide.settings import Settings


def client(limits: RateLimits) -> FlaskClient:
    app = create_app(stats=FakeStats(), edits=FakeEdits(), health_checks={}, feed=FakeFeedLog(),
                     control_plane=FakePlane(), control_token="t", rate_limits=limits)  # type: ignore[arg-type]
    return app.test_client()


def test_queries_past_the_limit_get_429_in_json_with_retry_after() -> None:
    http = client(RateLimits(queries="3/minute"))
    assert [http.get("/v1/stats?window=1h").status_code for _ in range(3)] == [200, 200, 200]
    refused = http.get("/v1/stats?window=24h")  # one count per client and endpoint, whatever the parameters
    assert refused.status_code == 429
    assert "rate limit exceeded" in refused.get_json()["error"]
    assert int(refused.headers["Retry-After"]) > 0
    # Another client, and another endpoint, have counts of their own.
    assert http.get("/v1/stats?window=1h", environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 200
    assert http.get("/v1/pages/top?window=1h").status_code == 200


def test_streams_and_control_have_limits_of_their_own() -> None:
    http = client(RateLimits(queries="2/minute", stream="1/minute", control="2/minute"))
    opened = http.get("/v1/stream", buffered=False)
    assert opened.status_code == 200
    opened.close()
    assert http.get("/v1/stream").status_code == 429
    # Control counts before the token check: wrong tokens are slowed down too.
    assert [http.get("/v1/control/status", headers={"Authorization": "Bearer x"}).status_code for _ in range(3)] == [
        403, 403, 429]
    assert http.get("/v1/stats?window=1h").status_code == 200


def test_off_means_no_limit() -> None:
    http = client(RateLimits(queries="off"))
    assert {http.get("/health").status_code for _ in range(150)} == {200}


@pytest.mark.parametrize("value", ["lots", "10/fortnight", "-1/second", ""])
def test_a_rate_setting_must_be_a_rate(value: str) -> None:
    if value == "":
        assert Settings.from_env({"WIKITIDE_RATE_LIMIT_QUERIES": value}).rate_limit_queries == "100/second"
        return
    with pytest.raises(ConfigError, match="WIKITIDE_RATE_LIMIT_QUERIES"):
        Settings.from_env({"WIKITIDE_RATE_LIMIT_QUERIES": value})


def test_shared_counts_only_grow_within_a_window_and_start_again_with_the_next() -> None:
    from api.limits import SharedRedisStorage

    storage = SharedRedisStorage("wikitide+redis://127.0.0.1:1/0")  # never connected: the script is replaced
    replies = iter([(1, 60_000), (5, 59_990), (4, 59_995), (1, 120_000)])
    storage.lua_incr_ttl = lambda keys, args: next(replies)  # type: ignore[method-assign,assignment]
    assert storage.count("k", 60, 1, None)[0] == 1
    assert storage.count("k", 60, 1, None)[0] == 5
    # A reply that overtook an earlier one (concurrent requests): this hit's own count, the shared count kept.
    assert storage.count("k", 60, 1, None)[0] == 4
    assert storage.get("k") == 5
    # The key expired and this trip opened it again: a window ending a minute later than the known one.
    assert storage.count("k", 60, 1, None)[0] == 1
    assert storage.get("k") == 1


def test_an_endpoints_limits_are_resolved_once_and_anew_after_a_change(monkeypatch) -> None:
    from flask_limiter._manager import LimitManager

    from api.routes import stats

    resolved: list[str | None] = []
    original = LimitManager.resolve_limits

    def counting(self, app, endpoint=None, *args, **kwargs):  # type: ignore[no-untyped-def]
        resolved.append(endpoint)
        return original(self, app, endpoint, *args, **kwargs)

    monkeypatch.setattr(LimitManager, "resolve_limits", counting)
    app = client(RateLimits(queries="3/minute")).application
    http = app.test_client()
    answers = [http.get("/v1/stats?window=1h") for _ in range(4)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert resolved.count("api_v1.stats") == 1
    assert answers[0].headers["X-RateLimit-Limit"] == "3"
    # A change to the limits (here: the endpoint exempted) applies from the next request on.
    (limiter,) = app.extensions["limiter"]
    limiter.exempt(stats)
    exempt = http.get("/v1/stats?window=1h")
    assert exempt.status_code == 200 and "X-RateLimit-Limit" not in exempt.headers
    assert resolved.count("api_v1.stats") == 2


def test_hits_that_arrive_while_a_round_trip_is_out_are_counted_in_memory() -> None:
    """Under gevent the requests that arrive during one request's round trip run meanwhile: they count in memory
    instead of each making a trip of its own."""
    from api.limits import SharedRedisStorage

    storage = SharedRedisStorage("wikitide+redis://127.0.0.1:1/0")  # never connected: the script is replaced
    shared = 0
    trips: list[int] = []

    def trip(keys: list[str], args: list[int]) -> tuple[int, int]:
        nonlocal shared
        trips.append(args[1])
        shared += args[1]
        if len(trips) == 2:  # the second trip is out: two more hits arrive meanwhile, knowing of the one it carries
            assert storage.count("k", 60, 1, 1000)[0] == 3
            assert storage.count("k", 60, 1, 1000)[0] == 4
        return shared, 60_000

    storage.lua_incr_ttl = trip  # type: ignore[method-assign,assignment]
    storage.count("k", 60, 1, 1000)  # opens the window
    storage._windows["k"].read_at -= SharedRedisStorage.SHARE_SECONDS  # the count read is old: the next hit trips
    storage.count("k", 60, 1, 1000)
    assert trips == [1, 1]
    # The two counted meanwhile go with the next trip.
    storage._windows["k"].read_at -= SharedRedisStorage.SHARE_SECONDS
    assert storage.count("k", 60, 1, 1000)[0] == 5
    assert trips == [1, 1, 3]
