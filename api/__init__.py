"""The wikitide read API: `create_app` is its composition root. Run it as
`gunicorn -c python:api.serving 'api:create_app()'` (see `api.serving`)."""

from __future__ import annotations

import atexit
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from api import answer_cache
from api.answer_cache import AnswerCache
from api.fanout import Fanout
from api.headers import SecurityHeaders
from api.health import HealthCache
from api.measuring import measure_requests
from api.openapi import TITLE, VERSION, DocumentedFlask, configure
from api.ports import EditStore, FeedLog, HealthChecks, Services, StatsStore
from api.routes import CACHED_ENDPOINTS, EXTENSION, api_v1, register_error_handlers, service
from wikitide.metrics import NULL_METRICS, Metrics, open_metrics
from wikitide.settings import Settings

if TYPE_CHECKING:
    from api.control_plane import ControlPlane
    from api.limits import RateLimits


def create_app(
    settings: Settings | None = None,
    *,
    stats: StatsStore | None = None,
    edits: EditStore | None = None,
    health_checks: HealthChecks | None = None,
    health_cache_seconds: float | None = None,
    answer_cache_seconds: float | None = None,
    feed: FeedLog | None = None,
    control_plane: ControlPlane | None = None,
    control_token: str | None = None,
    rate_limits: RateLimits | None = None,
    metrics: Metrics | None = None,
    data_version: Callable[[], object | None] | None = None,
) -> Flask:
    """The Flask app over the given ports; each port not given is built from `settings` (default: from_env).

    `control_plane` serves `/v1/control/*` behind `control_token` (default: the settings'); when not given it is
    built from the settings on first use. An app with neither has control off (403).
    `feed` (the live feed of `/v1/stream`) is built from the settings when the other ports are; an app given
    fakes for them and no feed answers `/v1/stream` with 404.
    `rate_limits` (default: the settings', counted in their Redis; else the defaults, counted in memory) apply per
    client to every endpoint (`api.limits`).
    `/health` reuses its checks for `health_cache_seconds` (default: the settings', 0 when every port is given).
    The read endpoints reuse a whole answer to the same URL for `answer_cache_seconds` in this process (default:
    the settings', 0 when every port is given; `api.answer_cache`), and only while `data_version` (default: the
    read model's version in Redis, polled, when the ports are built here; else none, the ttl alone) has not moved.
    Missing configuration fails here, naming the setting, rather than on the first request.
    `metrics` receives the request metrics (`api.measuring`) and FallbackReads; by default they are published as
    the settings say (given, or read here because a port is built), else not at all.
    """
    # The clients' libraries are imported here, not at the top: see the comment below.
    from api.control import CONTROL, MAX_BODY_BYTES, control
    from api.limits import RateLimits, install
    from api.stream_routes import live

    plane: Callable[[], Any] | None = (lambda: control_plane) if control_plane is not None else None
    if stats is None or edits is None or health_checks is None:
        # Imported here: `api.serving` (gunicorn's config, read by the master) imports this package, and the
        # clients' libraries must be first imported in the worker, after gevent patched it (see api/serving.py).
        from api.bootstrap import Adapters

        settings = settings or Settings.from_env()
    if metrics is None:
        metrics = _published_metrics(settings) if settings is not None else NULL_METRICS
    if stats is None or edits is None or health_checks is None:
        assert settings is not None
        adapters = Adapters(settings, metrics)
        stats = stats if stats is not None else adapters.stats
        edits = edits if edits is not None else adapters.edits
        health_checks = health_checks if health_checks is not None else adapters.health_checks
        feed = feed if feed is not None else adapters.feed
        if data_version is None:
            data_version = adapters.data_version.current
        if plane is None:
            plane = lambda: adapters.control_plane  # noqa: E731 - built on first use

    # APIFlask generates the OpenAPI document from the routes' schemas (`api.schemas`, `api.openapi`); `/docs`
    # is the service blueprint's own page (APIFlask's loads Swagger UI from a CDN and runs inline scripts).
    app = DocumentedFlask(__name__, title=TITLE, version=VERSION, docs_path=None, spec_path="/openapi.json",
                   static_folder="static", static_url_path="/static")
    configure(app)
    measure_requests(app, metrics)
    # A doubled slash (a wiki or title holding `/`) is a 404 in JSON, not an HTML redirect to another resource.
    app.url_map.merge_slashes = False
    # Only a dead letter's replay takes a body; nothing larger than a fixed record is ever read.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    if health_cache_seconds is None:
        health_cache_seconds = settings.health_cache_seconds if settings is not None else 0.0
    health = HealthCache(health_checks, ttl=health_cache_seconds)
    app.extensions[EXTENSION] = Services(
        stats=stats, edits=edits, health=health, feed=feed, fanout=Fanout(feed) if feed is not None else None
    )
    if rate_limits is None:
        rate_limits = RateLimits() if settings is None else _rate_limits(settings)
    app.wsgi_app = SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]
    if settings is not None and settings.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]
    if control_token is None and settings is not None:
        control_token = settings.control_token
    app.extensions[CONTROL] = {"token": control_token if plane is not None else None,
                               "plane": plane or _control_off}
    app.register_blueprint(api_v1)
    app.register_blueprint(live)
    app.register_blueprint(control)
    app.register_blueprint(service)
    register_error_handlers(app)
    install(app, rate_limits, stream=live, control=control)
    if answer_cache_seconds is None:
        answer_cache_seconds = settings.answer_cache_seconds if settings is not None else 0.0
    if answer_cache_seconds > 0:
        # After the limiter's hook: a kept answer still counts against the client's limit.
        answer_cache.install(app, AnswerCache(answer_cache_seconds), CACHED_ENDPOINTS,
                             data_version if data_version is not None else lambda: None)
    return app


def _control_off() -> Any:
    raise AssertionError("unreachable: with no control plane the token check refuses every call")


def _rate_limits(settings: Settings) -> RateLimits:
    from api.limits import RateLimits, redis_storage

    uri, options = (redis_storage(settings.redis_url, settings.redis_password, settings.redis_ca_file)
                    if settings.redis_url else ("memory://", ()))
    return RateLimits(queries=settings.rate_limit_queries, stream=settings.rate_limit_stream,
                      control=settings.rate_limit_control, storage_uri=uri, storage_options=options)


def _published_metrics(settings: Settings) -> Metrics:
    """The API's metrics, published as `settings` say until the process exits (each gunicorn worker has its own)."""
    measuring = open_metrics(settings, "api")
    atexit.register(measuring.close)
    return measuring.metrics
