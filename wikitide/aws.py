"""boto3 clients and calls, in one place. No endpoint is passed here: boto3 reads AWS_ENDPOINT_URL[_SERVICE] itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from wikitide import retry
from wikitide.errors import DependencyUnavailable, RequestRefused
from wikitide.settings import Settings

T = TypeVar("T")


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


# Errors that no retry can fix: a missing resource, a malformed request, missing permissions.
PERMANENT_ERROR_CODES = frozenset(
    {"ResourceNotFoundException", "ValidationException", "AccessDeniedException", "UnrecognizedClientException"}
)


class Retryable(Exception):
    """Raised inside an AWS operation for a partial failure worth another try (unprocessed items, failed entries)."""


def call(operation: Callable[[], T], *, what: str, attempts: int = 5, fast: bool = False) -> T:
    """Run one AWS operation with bounded, jittered retries; every failure leaves as DependencyUnavailable.

    Throttling, 5xx, connection errors and `Retryable` are retried; permanent errors fail at once, as
    `RequestRefused`.
    """

    def attempt() -> T:
        try:
            return operation()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in PERMANENT_ERROR_CODES:
                raise RequestRefused(f"{what}: {code}: {exc}") from exc
            raise Retryable(code) from exc
        except BotoCoreError as exc:
            raise Retryable(str(exc)) from exc

    try:
        return retry.bounded(attempt, retry_on=(Retryable,), attempts=attempts, fast=fast)
    except Retryable as exc:
        raise DependencyUnavailable(f"{what} failed after {attempts} attempts: {exc}") from exc
