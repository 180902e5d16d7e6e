"""The two apps `benchmarks/api_load.py` serves with gunicorn (`-c python:api.serving`), from the repository root:

- `queries()`: the API as production wires its reads (`api.bootstrap.Adapters.stats`: Redis first, DynamoDB only
  when Redis is not ready), over the redis-server named by `REDIS_URL`; single edits are not benchmarked;
- `constant()`: a minimal Flask app answering a constant JSON body, the baseline of the same run.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from api import create_app
from api.bootstrap import Adapters
from tests.unit.api_fakes import NoEdits
from wikitide.settings import Settings


def queries() -> Flask:
    settings = Settings.from_env()
    adapters = Adapters(settings)
    # Kept answers tied to the data version, as in production (nothing writes during the benchmark: it stays put).
    return create_app(settings, stats=adapters.stats, edits=NoEdits(), health_checks={},
                      data_version=adapters.data_version.current)


def constant() -> Flask:
    app = Flask(__name__)

    @app.get("/constant")
    def _constant() -> dict[str, Any]:
        return {"ok": True}

    return app
