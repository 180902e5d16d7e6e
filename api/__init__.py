"""The wikitide read API: `create_app` is its composition root. Run it as
`gunicorn -c python:api.serving 'api:create_app()'` (see `api.serving`)."""

from __future__ import annotations

import atexit

from flask import Flask

from api.bootstrap import Adapters
from api.health import HealthCache
from api.measuring import measure_requests
from api.ports import EditStore, HealthChecks, Services, StatsStore
from api.routes import EXTENSION, api_v1, register_error_handlers, service
from wikitide.metrics import NULL_METRICS, Metrics, open_metrics
from wikitide.settings import Settings


def create_app(
    settings: Settings | None = None,
    *,
    stats: StatsStore | None = None,
    edits: EditStore | None = None,
    health_checks: HealthChecks | None = None,
    health_cache_seconds: float | None = None,
    metrics: Metrics | None = None,
) -> Flask:
    """The Flask app over the given ports; each port not given is built from `settings` (default: from_env).

    `/health` reuses its checks for `health_cache_seconds` (default: the settings', 0 when every port is given).
    Missing configuration fails here, naming the setting, rather than on the first request.
    `metrics` receives the request metrics (`api.measuring`) and FallbackReads; by default they are published as
    the settings say (given, or read here because a port is built), else not at all.
    """
    if stats is None or edits is None or health_checks is None:
        settings = settings or Settings.from_env()
    if metrics is None:
        metrics = _published_metrics(settings) if settings is not None else NULL_METRICS
    if stats is None or edits is None or health_checks is None:
        assert settings is not None
        adapters = Adapters(settings, metrics)
        stats = stats if stats is not None else adapters.stats
        edits = edits if edits is not None else adapters.edits
        health_checks = health_checks if health_checks is not None else adapters.health_checks

    app = Flask(__name__, static_folder="static", static_url_path="/static")
    measure_requests(app, metrics)
    # A doubled slash (a wiki or title holding `/`) is a 404 in JSON, not an HTML redirect to another resource.
    app.url_map.merge_slashes = False
    if health_cache_seconds is None:
        health_cache_seconds = settings.health_cache_seconds if settings is not None else 0.0
    health = HealthCache(health_checks, ttl=health_cache_seconds)
    app.extensions[EXTENSION] = Services(stats=stats, edits=edits, health=health)
    app.register_blueprint(api_v1)
    app.register_blueprint(service)
    register_error_handlers(app)
    return app


def _published_metrics(settings: Settings) -> Metrics:
    """The API's metrics, published as `settings` say until the process exits (each gunicorn worker has its own)."""
    measuring = open_metrics(settings, "api")
    atexit.register(measuring.close)
    return measuring.metrics
