"""The shard scaler: every interval, read the stream's peak write load from CloudWatch, decide
(`wikitide.scaling.shards.decide`) and apply the decision with `UpdateShardCount` (uniform scaling).

The load is the stream's own `IncomingBytes` and `IncomingRecords` (namespace AWS/Kinesis): the busiest minute of
the last `window_minutes`, per second. The times of the changes it made are kept in a small JSON file, so the
cool-downs and the daily limit survive a restart of the scaler (a fresh file on a new task only forgets what AWS
still enforces: its own limit of calls per day refuses the call, which is logged). A stream that is not ACTIVE
(a change in progress) or is ON_DEMAND is left alone. Every AWS call goes through `wikitide.aws.call` with one
bounded policy; a failure is logged and the next interval tries again.

With `workers` (the KCL service's Application Auto Scaling resource, `service/<cluster>/<service>`), each change
also sets the workers' maximum to the new shard count (never below their minimum): a worker beyond one per shard
would hold no lease.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from wikitide import aws
from wikitide.errors import DependencyUnavailable
from wikitide.scaling.shards import DAY_SECONDS, Decision, Load, ShardPolicy, decide

logger = logging.getLogger(__name__)


class ChangeLog:
    """Times of the shard-count changes made, in a JSON file (the last day's only)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def times(self) -> list[float]:
        try:
            data = json.loads(self._path.read_text())
        except (OSError, ValueError):
            return []
        return [float(t) for t in data if isinstance(t, int | float)]

    def record(self, when: float) -> None:
        kept = [t for t in self.times() if when - t < DAY_SECONDS] + [when]
        self._path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._path.with_suffix(".tmp")
        temporary.write_text(json.dumps(kept))
        temporary.replace(self._path)


class ShardScaler:
    def __init__(self, cloudwatch: Any, kinesis: Any, stream_name: str, changes: ChangeLog, *,
                 policy: ShardPolicy | None = None, window_minutes: int = 5,
                 clock: Callable[[], float] = time.time, fast_retries: bool = False,
                 autoscaling: Any = None, workers: str | None = None) -> None:
        self._cloudwatch = cloudwatch
        self._kinesis = kinesis
        self._stream = stream_name
        self._changes = changes
        self._policy = policy or ShardPolicy()
        self._window = window_minutes
        self._clock = clock
        self._fast = fast_retries
        self._autoscaling = autoscaling
        self._workers = workers

    def read_load(self) -> Load | None:
        """The busiest minute of the window, per second; None when CloudWatch has no datapoint."""
        end = datetime.fromtimestamp(self._clock(), UTC)
        peaks = []
        for metric in ("IncomingBytes", "IncomingRecords"):
            answer = aws.call(lambda metric=metric: self._cloudwatch.get_metric_statistics(
                Namespace="AWS/Kinesis", MetricName=metric, Dimensions=[{"Name": "StreamName", "Value": self._stream}],
                StartTime=end - timedelta(minutes=self._window), EndTime=end, Period=60, Statistics=["Sum"],
            ), what=f"{metric} of {self._stream}", fast=self._fast)
            points = answer.get("Datapoints", [])
            if not points:
                return None
            peaks.append(max(float(p["Sum"]) for p in points) / 60)
        return Load(bytes_per_second=peaks[0], records_per_second=peaks[1])

    def step(self) -> Decision:
        """One look at the stream and at most one UpdateShardCount."""
        summary = aws.call(lambda: self._kinesis.describe_stream_summary(StreamName=self._stream),
                           what=f"DescribeStreamSummary {self._stream}", fast=self._fast)["StreamDescriptionSummary"]
        if summary.get("StreamModeDetails", {}).get("StreamMode") == "ON_DEMAND":
            return Decision(None, "the stream is ON_DEMAND: Kinesis scales it", 0.0)
        if summary["StreamStatus"] != "ACTIVE":
            return Decision(None, f"the stream is {summary['StreamStatus']}", 0.0)
        load = self.read_load()
        if load is None:
            return Decision(None, "no write metrics for the stream yet", 0.0)
        shards = int(summary["OpenShardCount"])
        now = self._clock()
        decision = decide(shards, load, self._changes.times(), now, self._policy)
        if decision.target is not None:
            aws.call(lambda: self._kinesis.update_shard_count(
                StreamName=self._stream, TargetShardCount=decision.target, ScalingType="UNIFORM_SCALING"),
                what=f"UpdateShardCount {self._stream} -> {decision.target}", fast=self._fast)
            self._changes.record(now)
            logger.info("stream %s: %d -> %d shards (%s)", self._stream, shards, decision.target, decision.reason)
            if self._workers is not None and self._autoscaling is not None:
                self._bound_workers(decision.target)
        else:
            logger.info("stream %s: %d shards kept (%s)", self._stream, shards, decision.reason)
        return decision

    def _bound_workers(self, shards: int) -> None:
        target = {"ServiceNamespace": "ecs", "ResourceId": self._workers,
                  "ScalableDimension": "ecs:service:DesiredCount"}
        found = aws.call(lambda: self._autoscaling.describe_scalable_targets(
            ServiceNamespace="ecs", ResourceIds=[self._workers], ScalableDimension="ecs:service:DesiredCount"),
            what=f"scalable target {self._workers}", fast=self._fast).get("ScalableTargets", [])
        if not found:
            logger.warning("no scalable target %s: the workers' maximum is left as it is", self._workers)
            return
        maximum = max(shards, int(found[0]["MinCapacity"]))
        aws.call(lambda: self._autoscaling.register_scalable_target(**target, MaxCapacity=maximum),
                 what=f"maximum of {self._workers}", fast=self._fast)
        logger.info("KCL workers %s: at most %d now", self._workers, maximum)

    def run(self, stop: threading.Event, interval: float) -> None:
        while True:
            try:
                self.step()
            except DependencyUnavailable as exc:
                logger.warning("stream %s: no decision this time: %s", self._stream, exc)
            if stop.wait(interval):
                return
