"""Dependency checks for `/health`: every check runs at once, each bounded by a timeout; nothing here raises.

A check is any callable that returns when its dependency answered and raises when it did not; the factories
below build them over clients passed in (a redis-py client, boto3 DynamoDB and Kinesis clients). A failure is
reported in words that name no address (the exception, with its endpoint, goes to the log), and `HealthCache`
reuses one round of checks for a few seconds: a load balancer or a dashboard polling `/health` must not turn
into a Kinesis `DescribeStreamSummary` per call (AWS allows 20 a second per account).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from api.ports import HealthCheck

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 2.0


def redis_check(client: Any) -> HealthCheck:
    return lambda: client.ping()


def dynamodb_check(client: Any, table: str) -> HealthCheck:
    return lambda: client.describe_table(TableName=table)


def kinesis_check(client: Any, stream: str) -> HealthCheck:
    return lambda: client.describe_stream_summary(StreamName=stream)


def run_checks(
    checks: Mapping[str, HealthCheck],
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, dict[str, Any]]:
    """`{name: {"ok": bool, "latency_ms": float, "error"?: str}}` for every check, within about `timeout`."""
    if not checks:
        return {}
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="health")
    try:
        futures = {name: pool.submit(_timed, check, clock) for name, check in checks.items()}
        deadline = clock() + timeout
        return {name: _outcome(name, future, deadline, clock, timeout) for name, future in futures.items()}
    finally:
        # A hung check keeps its thread, but the answer must not wait for it.
        pool.shutdown(wait=False, cancel_futures=True)


def is_healthy(results: Mapping[str, Mapping[str, Any]]) -> bool:
    return all(result["ok"] for result in results.values())


def _timed(check: HealthCheck, clock: Callable[[], float]) -> dict[str, Any]:
    started = clock()
    try:
        check()
    # The health endpoint reports any failure as data instead of failing itself.
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": _describe(exc), "latency_ms": _ms(clock() - started)}
    return {"ok": True, "latency_ms": _ms(clock() - started)}


def _outcome(
    name: str, future: Any, deadline: float, clock: Callable[[], float], timeout: float
) -> dict[str, Any]:
    try:
        result: dict[str, Any] = future.result(timeout=max(0.0, deadline - clock()))
    except FutureTimeout:
        result = {"ok": False, "error": f"no answer within {timeout:g}s", "latency_ms": _ms(timeout)}
    if not result["ok"]:
        logger.warning("health check %s failed: %s", name, result["error"])
    return result


def _describe(exc: Exception) -> str:
    """What failed, for a client: the kind of failure and, for a refused request, the service's error code."""
    logger.warning("health check failed: %r", exc)  # the detail, endpoint included, for the operator only
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    if isinstance(code, str) and code:
        return f"refused the request ({code[:80]})"
    names = [cls.__name__.lower() for cls in type(exc).__mro__]
    if any("timeout" in name for name in names):
        return "did not answer in time"
    if any("connect" in name for name in names):
        return "could not be reached"
    return f"failed ({type(exc).__name__})"


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class HealthCache:
    """One round of `run_checks` shared by every caller for `ttl` seconds; a round runs at most once at a time.

    `results()` returns the round and its age in seconds. When the round is older than `ttl`, the first caller
    runs a new one (bounded by the checks' timeout) and the callers arriving meanwhile wait for it.
    """

    def __init__(
        self,
        checks: Mapping[str, HealthCheck],
        *,
        ttl: float,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._checks = checks
        self._ttl = ttl
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._round: dict[str, dict[str, Any]] | None = None
        self._checked_at = 0.0

    def results(self) -> tuple[dict[str, dict[str, Any]], float]:
        with self._lock:
            now = self._clock()
            if self._round is None or now - self._checked_at >= self._ttl:
                self._round = run_checks(self._checks, timeout=self._timeout)
                self._checked_at = now = self._clock()
            return self._round, now - self._checked_at
