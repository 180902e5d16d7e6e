"""The CloudWatch sink: batched `PutMetricData`, one attempt per call, under the stack's namespace.

Every datum carries the dimensions `Stack` (the stack name) and `Component` (producer, processor, api), so the
alarms and the dashboard of `cloudformation/monitoring.yaml` select one stack's pipeline, and every worker of a
component adds into the same series. A call holds at most `DATUMS_PER_CALL` datums (each of at most 150 values),
well under PutMetricData's 1,000 datums and 1 MB per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from wikitide.errors import DependencyUnavailable
from wikitide.metrics.recorder import Datum

NAMESPACE = "Wikitide"
DATUMS_PER_CALL = 100
# One attempt per call (the publisher never retries): a call that cannot finish in these is dropped.
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 5.0


class CloudWatchSink:
    def __init__(self, client: Any, *, stack: str, component: str, namespace: str = NAMESPACE) -> None:
        self._client = client
        self._namespace = namespace
        self._dimensions = [{"Name": "Stack", "Value": stack}, {"Name": "Component", "Value": component}]

    def send(self, datums: Sequence[Datum]) -> None:
        for start in range(0, len(datums), DATUMS_PER_CALL):
            batch = datums[start : start + DATUMS_PER_CALL]
            try:
                self._client.put_metric_data(Namespace=self._namespace, MetricData=[self._datum(d) for d in batch])
            except (ClientError, BotoCoreError) as exc:
                raise DependencyUnavailable(f"PutMetricData to {self._namespace}: {exc}") from exc

    def _datum(self, datum: Datum) -> dict[str, Any]:
        return {
            "MetricName": datum.name,
            "Dimensions": self._dimensions,
            "Timestamp": datetime.fromtimestamp(datum.timestamp, UTC),
            "Unit": datum.unit,
            "Values": list(datum.values),
            "Counts": list(datum.counts),
        }
