"""A DynamoDB or a Redis that accepts connections and never answers (a proxy holds them) cannot hold a process.

- The record processor (the real `wikitide-kcl-processor`, spoken to over the MultiLangDaemon's own protocol on
  its stdin and stdout) exits with status 75 for redelivery within its retry policies' bound, and asks for no
  checkpoint.
- The API answers `/health` with 503 within its health timeout, and answers queries from DynamoDB when Redis
  hangs, each within its own timeouts, instead of holding a gunicorn worker.

Bounds are the declared worst cases plus a margin for a loaded 2-core machine; the measured times are printed.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
import redis

from tests.conftest import RECENTCHANGE
from tests.integration.hanging_proxy import HangingProxy
from wikitide import keys, retry
from wikitide.localstack.services import free_port, http_answers, wikitide_command
from wikitide.localstack.supervisor import ServiceSpec, Supervisor

pytestmark = pytest.mark.integration

EXIT_REDELIVER = 75
LOADED_MARGIN_SECONDS = 20.0


def _records(count: int) -> list[dict[str, object]]:
    path = RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson"
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:count]
    now_ms = int(time.time() * 1000)
    return [
        {
            "action": "record",  # amazon_kclpy decodes every object of a message by its action
            "data": base64.b64encode(line.encode()).decode(),
            "partitionKey": str(index),
            "sequenceNumber": str(49_000_000_000 + index),
            "subSequenceNumber": 0,
            "approximateArrivalTimestamp": now_ms,
        }
        for index, line in enumerate(lines)
    ]


class ProcessorSession:
    """One processor process, driven as the MultiLangDaemon drives it: JSON lines in, status lines out."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        script = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "wikitide-kcl-processor"
        self.process = subprocess.Popen(
            [str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log.with_suffix(".stderr").open("w"),
            env={**os.environ, **env, "WIKITIDE_PROCESSOR_LOG": str(log)}, text=True,
        )
        self.seen: list[dict[str, object]] = []

    def send(self, message: dict[str, object]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def answer(self) -> dict[str, object] | None:
        """The next message the processor writes; None when it exited."""
        assert self.process.stdout is not None
        while line := self.process.stdout.readline():
            if line.strip():
                message: dict[str, object] = json.loads(line)
                self.seen.append(message)
                return message
        return None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def _processor_env(local_stack: object, provisioned: object) -> dict[str, str]:
    env: dict[str, str] = dict(local_stack.env)  # type: ignore[attr-defined]
    env["WIKITIDE_STACK"] = provisioned.stream_name.removesuffix("-changes")  # type: ignore[attr-defined]
    return env


def _run_until_exit(env: dict[str, str], log: Path, proxy: HangingProxy, bound: float) -> tuple[int, float]:
    session = ProcessorSession(env, log)
    try:
        session.send({"action": "initialize", "shardId": "shardId-000000000000", "sequenceNumber": "TRIM_HORIZON",
                      "subSequenceNumber": 0})
        assert session.answer() == {"action": "status", "responseFor": "initialize"}
        proxy.hang()
        started = time.monotonic()
        session.send({"action": "processRecords", "records": _records(20), "millisBehindLatest": 0})
        while session.answer() is not None:
            pass
        code = session.process.wait(timeout=bound + 60)
        elapsed = time.monotonic() - started
    finally:
        session.close()
    assert all(message.get("action") != "checkpoint" for message in session.seen), session.seen
    return code, elapsed


def test_a_hung_dynamodb_makes_the_processor_exit_for_redelivery_in_bounded_time(
    local_stack, provisioned, tmp_path: Path
) -> None:
    moto = urlparse(local_stack.env["AWS_ENDPOINT_URL_DYNAMODB"])
    bound = retry.PROCESSOR_DYNAMODB.worst_case(retry.AWS_READ_TIMEOUT)
    with HangingProxy(moto.hostname or "127.0.0.1", moto.port or 80) as proxy:
        env = {**_processor_env(local_stack, provisioned), "AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{proxy.port}"}
        code, elapsed = _run_until_exit(env, tmp_path / "processor.log", proxy, bound)
    print(f"\nhung DynamoDB: processor exited {code} after {elapsed:.1f} s (declared bound {bound:.0f} s)")
    assert proxy.held > 0
    assert code == EXIT_REDELIVER, (tmp_path / "processor.stderr").read_text()
    assert "redelivery" in (tmp_path / "processor.log").read_text()
    assert elapsed <= bound + LOADED_MARGIN_SECONDS


def test_a_hung_redis_makes_the_processor_exit_for_redelivery_in_bounded_time(
    local_stack, provisioned, redis_url: str, tmp_path: Path
) -> None:
    target = urlparse(redis_url)
    bound = retry.PROCESSOR_REDIS.worst_case(retry.REDIS_SOCKET_TIMEOUT)
    with HangingProxy(target.hostname or "127.0.0.1", target.port or 6379) as proxy:
        env = {**_processor_env(local_stack, provisioned), "REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0"}
        # The DynamoDB writes come first and succeed; the batch then hangs on Redis.
        code, elapsed = _run_until_exit(env, tmp_path / "processor.log", proxy, bound + 30)
    print(f"\nhung Redis: processor exited {code} after {elapsed:.1f} s (declared Redis bound {bound:.0f} s)")
    assert proxy.held > 0
    assert code == EXIT_REDELIVER, (tmp_path / "processor.stderr").read_text()
    assert "Redis failed" in (tmp_path / "processor.log").read_text()
    # The batch's DynamoDB writes (20 records on moto) take a few seconds before Redis is reached.
    assert elapsed <= bound + 30 + LOADED_MARGIN_SECONDS


@pytest.fixture
def api_behind_proxies(local_stack, provisioned, redis_url: str, tmp_path: Path) -> Iterator[tuple[str, dict]]:
    """gunicorn serving the API (as `wikitide local up` starts it), its Redis and its DynamoDB behind proxies."""
    moto = urlparse(local_stack.env["AWS_ENDPOINT_URL_DYNAMODB"])
    target = urlparse(redis_url)
    port = free_port()
    with HangingProxy(target.hostname or "127.0.0.1", target.port or 6379) as redis_proxy, \
            HangingProxy(moto.hostname or "127.0.0.1", moto.port or 80) as dynamo_proxy:
        env = {
            **_processor_env(local_stack, provisioned),
            "REDIS_URL": f"redis://127.0.0.1:{redis_proxy.port}/0",
            "AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{dynamo_proxy.port}",
            # Every /health call checks: the test asks right after the fault (caching: tests/unit/test_api_health.py).
            "WIKITIDE_HEALTH_CACHE_SECONDS": "0",
            # Every query reads the stores: the test is about what a read does while one of them hangs.
            "WIKITIDE_ANSWER_CACHE_SECONDS": "0",
        }
        supervisor = Supervisor(tmp_path / "logs")
        gunicorn = Path(wikitide_command()[0]).parent / "gunicorn"
        supervisor.start(ServiceSpec(
            name="api", env=env, cwd=Path(__file__).resolve().parents[2],
            command=[str(gunicorn), "--config", "python:api.serving", "--bind", f"127.0.0.1:{port}",
                     "--workers", "2", "api:create_app()"],
            ready=lambda: http_answers(f"http://127.0.0.1:{port}/health"),
        ))
        try:
            yield f"http://127.0.0.1:{port}", {"redis": redis_proxy, "dynamodb": dynamo_proxy}
        finally:
            supervisor.stop_all()


def _timed_get(url: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.get(url, timeout=60)
    return response, time.monotonic() - started


def test_a_hung_redis_gives_503_health_and_answers_from_dynamodb(api_behind_proxies, redis_url: str) -> None:
    from api import bootstrap
    from api.health import DEFAULT_TIMEOUT_SECONDS

    api_url, proxies = api_behind_proxies
    redis.Redis.from_url(redis_url).set(keys.READY, 1)  # Redis holds the counters: the API reads it first
    assert httpx.get(f"{api_url}/v1/stats?window=1h", timeout=30).status_code == 200
    proxies["redis"].hang()

    health, health_seconds = _timed_get(f"{api_url}/health")
    assert health.status_code == 503
    assert health.json()["dependencies"]["redis"]["ok"] is False
    assert health.json()["dependencies"]["dynamodb"]["ok"] is True

    # Every gunicorn worker meets the hung Redis once, then reads DynamoDB without asking Redis again.
    times = []
    for _ in range(6):
        response, seconds = _timed_get(f"{api_url}/v1/stats?window=1h")
        assert response.status_code == 200, response.text
        times.append(seconds)
    print(f"\nhung Redis: /health 503 in {health_seconds:.2f} s; /v1/stats from DynamoDB in "
          + ", ".join(f"{t:.2f}" for t in times) + " s")
    assert proxies["redis"].held > 0
    assert health_seconds <= DEFAULT_TIMEOUT_SECONDS + LOADED_MARGIN_SECONDS / 4
    bound = bootstrap.REDIS_TIMEOUT_SECONDS + bootstrap.AWS_READ_ATTEMPTS * bootstrap.AWS_READ_TIMEOUT_SECONDS
    assert max(times) <= bound + LOADED_MARGIN_SECONDS / 4


def test_a_hung_dynamodb_gives_503_health_within_its_timeout(api_behind_proxies) -> None:
    from api.health import DEFAULT_TIMEOUT_SECONDS

    api_url, proxies = api_behind_proxies
    proxies["dynamodb"].hang()
    health, seconds = _timed_get(f"{api_url}/health")
    print(f"\nhung DynamoDB: /health {health.status_code} in {seconds:.2f} s")
    assert health.status_code == 503
    assert health.json()["dependencies"]["dynamodb"]["ok"] is False
    assert health.json()["dependencies"]["redis"]["ok"] is True
    assert proxies["dynamodb"].held > 0
    assert seconds <= DEFAULT_TIMEOUT_SECONDS + LOADED_MARGIN_SECONDS / 4
