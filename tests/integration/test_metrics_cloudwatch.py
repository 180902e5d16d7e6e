"""The metrics path on the local stack: a real API app publishes through its background publisher into moto's
CloudWatch, and `wikitide metrics` (a child process, as a user runs it) reads the same numbers back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from api import create_app
from tests.unit.test_api_routes import FakeEdits, FakeStats
from wikitide.metrics import open_metrics
from wikitide.settings import Settings

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _metrics_json(env: dict[str, str]) -> list[dict]:
    answer = subprocess.run([sys.executable, "-m", "wikitide", "metrics", "--minutes", "5", "--json"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)


def test_the_api_publishes_its_requests_and_wikitide_metrics_reads_them(local_stack: object) -> None:
    stack = f"wt-metrics-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "WIKITIDE_STACK": stack, "WIKITIDE_METRICS": "cloudwatch", "WIKITIDE_METRICS_INTERVAL": "1"}
    assert env["AWS_ENDPOINT_URL_CLOUDWATCH"] == local_stack.env["AWS_ENDPOINT_URL_CLOUDWATCH"]  # type: ignore[attr-defined]
    settings = Settings.from_env(env)
    # The ports are fakes (no stack is deployed under this name); the metrics are published as in production.
    measuring = open_metrics(settings, "api")
    app = create_app(settings, stats=FakeStats(), edits=FakeEdits(), health_checks={}, metrics=measuring.metrics)
    client = app.test_client()
    statuses = [client.get(url).status_code for url in ["/v1/stats?window=5m"] * 7 + ["/v1/stats?window=9m"] * 2]
    assert statuses == [200] * 7 + [400] * 2

    deadline = time.monotonic() + 60
    rows: dict[str, dict] = {}
    while time.monotonic() < deadline:
        rows = {row["metric"]: row for row in _metrics_json(env) if row["component"] == "api"}
        if rows.get("Requests", {}).get("sum") == 9:
            break
        time.sleep(1)
    assert rows["Requests"]["sum"] == 9, rows
    assert rows["Status4xx"]["sum"] == 2 and rows["Status5xx"]["sum"] == 0
    assert rows["Latency"]["samples"] == 9 and rows["Latency"]["maximum"] > 0
    table = subprocess.run([sys.executable, "-m", "wikitide", "metrics"], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=120, check=True).stdout
    measuring.close()
    assert any(line.split()[:2] == ["api", "Requests"] for line in table.splitlines()), table


def test_a_real_producer_publishes_what_it_read_and_wrote(provisioned, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration.faulty_sse import FaultySSE
    from tests.integration.test_producer_options import _frames, _produce

    monkeypatch.setenv("WIKITIDE_METRICS_INTERVAL", "1")
    frames = _frames(300)
    with FaultySSE(frames, []) as server:
        log = _produce(provisioned, server, frames[-1].id)
    env = {**os.environ, "WIKITIDE_STACK": provisioned.stream_name.removesuffix("-changes")}
    rows = {row["metric"]: row for row in _metrics_json(env) if row["component"] == "producer"}
    # Stopped with SIGTERM: the last interval was published on the way out, so the totals are final.
    published = (rows["EventsRead"]["sum"], rows["EventsWritten"]["sum"])
    assert published == (300, 300), [line for line in log.splitlines() if "metrics" in line] or log[-2000:]
    assert rows["EventsRejected"]["sum"] == 0 and rows["Gaps"]["sum"] == 0
    assert sum(rows[name]["samples"] for name in ("PutRecordsLatency", "PutRecordLatency") if name in rows) >= 1
    assert rows["BacklogEntries"]["maximum"] <= 300
