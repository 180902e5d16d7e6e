"""boto3 clients and calls, in one place. No endpoint is passed here: boto3 reads AWS_ENDPOINT_URL[_SERVICE] itself.

Two kinds of client, both with connect and read timeouts, so that a call is retried by one loop only:
`make_adapter_client` for an adapter that sends every call through `call` (one attempt per call: the retries
are `call`'s, under the call site's `retry.Policy`), and `make_client` for calls made directly (reading the
stack's outputs, deploying, the CLI, tests), where botocore's own standard retries are the policy.
"""

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

# For calls made directly, outside any `call` loop: botocore's standard retries, this many tries in all.
SDK_RETRY_ATTEMPTS = 5
SDK_READ_TIMEOUT = 10.0
DEFAULT_POLICY = retry.Policy("AWS call", attempts=5, deadline=15.0)


def make_session(settings: Settings) -> boto3.session.Session:
    return boto3.session.Session(region_name=settings.region)


def make_adapter_client(settings: Settings, service: str, *, read_timeout: float = retry.AWS_READ_TIMEOUT) -> Any:
    """A client that makes one attempt per call, for an adapter that wraps every call in `call`."""
    return make_client(settings, service, max_attempts=1, read_timeout=read_timeout)


def make_client(
    settings: Settings,
    service: str,
    *,
    max_attempts: int = SDK_RETRY_ATTEMPTS,
    read_timeout: float = SDK_READ_TIMEOUT,
    connect_timeout: float = retry.AWS_CONNECT_TIMEOUT,
) -> Any:
    """A client whose requests make at most `max_attempts` tries in all (botocore's standard retries), each
    within the timeouts (seconds). Never wrap its calls in `call`: that would multiply the tries."""
    config = Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout,
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


def call(
    operation: Callable[[], T],
    *,
    what: str,
    policy: retry.Policy = DEFAULT_POLICY,
    attempts: int | None = None,
    fast: bool = False,
) -> T:
    """Run one AWS operation under `policy` (bounded, jittered retries); every failure leaves as
    DependencyUnavailable. `attempts` overrides the policy's count; `fast` makes the waits a millisecond.

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
        return retry.bounded(attempt, retry_on=(Retryable,), policy=policy, attempts=attempts, fast=fast)
    except Retryable as exc:
        raise DependencyUnavailable(f"{what} failed under {policy.name!r} retries: {exc}") from exc
