"""`api.health.run_checks`: every check reported, none raising, a hung one cut off at the timeout."""

from __future__ import annotations

import threading
import time
from typing import Any

from api.health import dynamodb_check, is_healthy, kinesis_check, redis_check, run_checks


class RecordingClient:
    """Stands for the redis / DynamoDB / Kinesis clients: records the one call a check makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def ping(self) -> bool:
        self.calls.append(("ping", {}))
        return True

    def describe_table(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("describe_table", kwargs))
        return {}

    def describe_stream_summary(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("describe_stream_summary", kwargs))
        return {}


def test_checks_call_their_dependency_by_name() -> None:
    client = RecordingClient()
    results = run_checks(
        {
            "redis": redis_check(client),
            "dynamodb": dynamodb_check(client, "events-table"),
            "kinesis": kinesis_check(client, "changes-stream"),
        }
    )
    assert is_healthy(results)
    assert sorted(client.calls, key=lambda call: call[0]) == [
        ("describe_stream_summary", {"StreamName": "changes-stream"}),
        ("describe_table", {"TableName": "events-table"}),
        ("ping", {}),
    ]


def test_a_failing_check_is_reported_not_raised() -> None:
    def broken() -> None:
        raise RuntimeError("table gone")

    results = run_checks({"ok": lambda: None, "dynamodb": broken})
    assert results["ok"]["ok"] is True
    assert results["dynamodb"] == {
        "ok": False,
        "error": "failed (RuntimeError)",
        "latency_ms": results["dynamodb"]["latency_ms"],
    }
    assert not is_healthy(results)


def test_a_hung_check_is_cut_off_at_the_timeout() -> None:
    release = threading.Event()
    started = time.monotonic()
    try:
        results = run_checks({"kinesis": lambda: release.wait(10), "redis": lambda: None}, timeout=0.2)
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert elapsed < 2
    assert results["kinesis"]["ok"] is False
    assert "0.2s" in results["kinesis"]["error"]
    assert results["redis"]["ok"] is True


def test_latency_is_measured_in_milliseconds_with_the_given_clock() -> None:
    now = [100.0]

    def slow_ping() -> None:
        now[0] += 0.25

    results = run_checks({"redis": slow_ping}, clock=lambda: now[0])
    assert results["redis"] == {"ok": True, "latency_ms": 250.0}


def test_no_checks_is_healthy() -> None:
    assert run_checks({}) == {}
    assert is_healthy({})
