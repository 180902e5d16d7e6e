"""The shard scaler against the local stack: the stream's write metrics are put into moto's CloudWatch (kinesis-mock
publishes none), and the scaler reshards kinesis-mock's stream as the decision says, then holds it in cool-down."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from wikitide.aws import make_client
from wikitide.scaling.service import ChangeLog, ShardScaler
from wikitide.settings import Settings

pytestmark = pytest.mark.integration


def _put_load(cloudwatch: object, stream: str, records_per_minute: float, bytes_per_record: float) -> None:
    now = datetime.now(UTC)
    cloudwatch.put_metric_data(Namespace="AWS/Kinesis", MetricData=[  # type: ignore[attr-defined]
        {"MetricName": name, "Dimensions": [{"Name": "StreamName", "Value": stream}], "Timestamp": now,
         "Value": value, "Unit": unit}
        for name, value, unit in (("IncomingRecords", records_per_minute, "Count"),
                                  ("IncomingBytes", records_per_minute * bytes_per_record, "Bytes"))
    ])


def _open_shards(kinesis: object, stream: str) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        summary = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]  # type: ignore[attr-defined]
        if summary["StreamStatus"] == "ACTIVE":
            return int(summary["OpenShardCount"])
        time.sleep(0.5)
    raise AssertionError(f"{stream} never became ACTIVE again")


def test_the_scaler_reshards_the_stream_as_the_load_says(provisioned: object, tmp_path: Path) -> None:
    settings = Settings.from_env()
    stream = provisioned.stream_name  # type: ignore[attr-defined]
    kinesis = make_client(settings, "kinesis")
    cloudwatch = make_client(settings, "cloudwatch")
    clock = [time.time()]
    changes = ChangeLog(tmp_path / "changes.json")
    scaler = ShardScaler(cloudwatch, kinesis, stream, changes, clock=lambda: clock[0])
    before = _open_shards(kinesis, stream)
    assert scaler.step().reason == "no write metrics for the stream yet"

    _put_load(cloudwatch, stream, 900 * 60 * before, 1215)  # 900 records/s per shard: 104% of a shard's MiB/s
    clock[0] = time.time() + 1  # the window ends after the datum
    decision = scaler.step()
    assert decision.target == 2 * before
    assert _open_shards(kinesis, stream) == 2 * before
    assert len(changes.times()) == 1

    # More load at once, too much even for the new shards: the cool-down holds the next scale-out.
    _put_load(cloudwatch, stream, 2000 * 60 * before, 1215)
    clock[0] = time.time() + 1
    held = scaler.step()
    assert held.target is None and "waits" in held.reason
    assert _open_shards(kinesis, stream) == 2 * before
