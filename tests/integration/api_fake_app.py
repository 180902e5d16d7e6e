"""The API over in-memory ports, for tests that run it under a real gunicorn:
`gunicorn -c python:api.serving 'tests.integration.api_fake_app:create()'` from the repository root."""

from __future__ import annotations

from flask import Flask

from api import create_app
from tests.unit.api_fakes import EmptyStats, NoEdits


def create() -> Flask:
    return create_app(stats=EmptyStats(), edits=NoEdits(), health_checks={"memory": lambda: None})
