"""Dependency checks for `/health`: every check runs at once, each bounded by a timeout; nothing here raises.

A check is any callable that returns when its dependency answered and raises when it did not; the factories
below build them over clients passed in (a redis-py client, boto3 DynamoDB and Kinesis clients).
"""

from __future__ import annotations

import logging
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
    return f"{type(exc).__name__}: {exc}"[:200]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
