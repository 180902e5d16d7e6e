"""The shard scaler's service with hand-written fakes of CloudWatch, Kinesis and Application Auto Scaling: it reads
the busiest minute, applies the decision, keeps its changes for the cool-downs, leaves a busy or ON_DEMAND stream
alone, and bounds the KCL workers by the new shard count (never below their minimum)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wikitide.scaling.service import ChangeLog, ShardScaler

NOW = 1_700_000_000.0


class FakeCloudWatch:
    def __init__(self, records_per_minute: list[float], bytes_per_record: float = 1215) -> None:
        self.minutes = records_per_minute
        self.bytes_per_record = bytes_per_record

    def get_metric_statistics(self, **kwargs: Any) -> dict[str, Any]:
        factor = self.bytes_per_record if kwargs["MetricName"] == "IncomingBytes" else 1
        return {"Datapoints": [{"Sum": n * factor} for n in self.minutes]}


class FakeKinesis:
    def __init__(self, shards: int, status: str = "ACTIVE", mode: str = "PROVISIONED") -> None:
        self.shards, self.status, self.mode = shards, status, mode
        self.updates: list[int] = []

    def describe_stream_summary(self, StreamName: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        return {"StreamDescriptionSummary": {"OpenShardCount": self.shards, "StreamStatus": self.status,
                                             "StreamModeDetails": {"StreamMode": self.mode}}}

    def update_shard_count(self, StreamName: str, TargetShardCount: int, ScalingType: str) -> None:  # noqa: N803
        assert ScalingType == "UNIFORM_SCALING"
        self.updates.append(TargetShardCount)
        self.shards = TargetShardCount


class FakeAutoscaling:
    def __init__(self, minimum: int) -> None:
        self.minimum = minimum
        self.maximums: list[int] = []

    def describe_scalable_targets(self, **kwargs: Any) -> dict[str, Any]:
        return {"ScalableTargets": [{"MinCapacity": self.minimum}]}

    def register_scalable_target(self, **kwargs: Any) -> None:
        assert kwargs["ResourceId"] == "service/c/kcl"
        self.maximums.append(kwargs["MaxCapacity"])


def _scaler(tmp_path: Path, cloudwatch: FakeCloudWatch, kinesis: FakeKinesis, clock: list[float],
            autoscaling: FakeAutoscaling | None = None) -> ShardScaler:
    return ShardScaler(cloudwatch, kinesis, "s", ChangeLog(tmp_path / "changes.json"), clock=lambda: clock[0],
                       fast_retries=True, autoscaling=autoscaling, workers="service/c/kcl" if autoscaling else None)


def test_the_busiest_minute_scales_out_and_bounds_the_workers(tmp_path: Path) -> None:
    kinesis, autoscaling, clock = FakeKinesis(2), FakeAutoscaling(minimum=2), [NOW]
    # 30 events/s most minutes, one minute at 1,500/s: the peak decides.
    scaler = _scaler(tmp_path, FakeCloudWatch([1800, 1800, 90_000, 1800]), kinesis, clock, autoscaling)
    assert scaler.read_load() is not None and scaler.read_load().records_per_second == 1500  # type: ignore[union-attr]
    assert scaler.step().target == 4
    assert (kinesis.updates, autoscaling.maximums) == ([4], [4])
    assert ChangeLog(tmp_path / "changes.json").times() == [NOW]


def test_the_quiet_stream_scales_in_after_the_cooldown_and_never_bounds_workers_below_their_minimum(
        tmp_path: Path) -> None:
    kinesis, autoscaling, clock = FakeKinesis(4), FakeAutoscaling(minimum=2), [NOW]
    ChangeLog(tmp_path / "changes.json").record(NOW - 600)
    scaler = _scaler(tmp_path, FakeCloudWatch([1800] * 5), kinesis, clock, autoscaling)
    assert scaler.step().target is None and kinesis.updates == []  # 10 minutes after the last change
    clock[0] = NOW + 3600
    assert scaler.step().target == 2
    clock[0] = NOW + 2 * 3600 + 60
    assert scaler.step().target == 1
    assert kinesis.updates == [2, 1] and autoscaling.maximums == [2, 2]


def test_a_stream_that_is_updating_on_demand_or_without_metrics_is_left_alone(tmp_path: Path) -> None:
    for kinesis, cloudwatch in ((FakeKinesis(1, status="UPDATING"), FakeCloudWatch([90_000])),
                                (FakeKinesis(1, mode="ON_DEMAND"), FakeCloudWatch([90_000])),
                                (FakeKinesis(1), FakeCloudWatch([]))):
        assert _scaler(tmp_path, cloudwatch, kinesis, [NOW]).step().target is None
        assert kinesis.updates == []
