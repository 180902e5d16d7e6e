"""boto3 clients, built in one place. No endpoint is passed here: boto3 reads AWS_ENDPOINT_URL[_SERVICE] itself."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from wikitide.settings import Settings


def make_session(settings: Settings) -> boto3.session.Session:
    return boto3.session.Session(region_name=settings.region)


def make_client(settings: Settings, service: str, *, max_attempts: int = 4, read_timeout: float = 10.0) -> Any:
    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=3,
        read_timeout=read_timeout,
        max_pool_connections=20,
    )
    return make_session(settings).client(service, config=config)
