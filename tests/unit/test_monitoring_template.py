"""cloudformation/monitoring.yaml watches what the processes really publish: every metric of the namespace
Wikitide that an alarm or the dashboard names is one that the producer, the processor or the API records (run
here with the fakes), under the component that records it; every alarm notifies the topic."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from api import create_app
from kcl_app.bootstrap import BatchHandler
from kcl_app.processor import ChangeProcessor
from producer.kinesis_writer import KinesisWriter
from producer.service import Producer
from tests.unit.fakes import FakeKinesis, fake_stores
from tests.unit.test_api_routes import FakeEdits, FakeStats
from tests.unit.test_metrics import RecordingMetrics, _event
from tests.unit.test_processor import Checkpointer, Initialize, Input, _recorded, _records
from wikitide import stack
from wikitide.metrics.recorder import DROPPED

TEMPLATE = Path(stack.TEMPLATE_PATH).parent / "monitoring.yaml"


def _published() -> dict[str, set[str]]:
    """Metric names each component records, found by running it on the fakes."""
    producer = RecordingMetrics()
    Producer(iter([_event(n) for n in range(5)]), FakeKinesis(), linger=0.01, metrics=producer).run(
        threading.Event())

    class ThrottlingKinesis:
        calls = 0

        def put_records(self, **kwargs: Any) -> dict[str, Any]:
            self.calls += 1
            if self.calls == 1:
                raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "PutRecords")
            return {"FailedRecordCount": 0, "Records": [{"ShardId": "shardId-0"} for _ in kwargs["Records"]]}

    from producer.batcher import Entry

    KinesisWriter(ThrottlingKinesis(), "s", fast_retries=True, metrics=producer).put([Entry(b"x", "k")])
    processor = RecordingMetrics()
    stores, *_ = fake_stores()
    change_processor = ChangeProcessor(BatchHandler(stores), metrics=processor)
    change_processor.initialize(Initialize())
    change_processor.process_records(Input(_records([p for _, p in _recorded(20)]), Checkpointer(), 5))
    api = RecordingMetrics()
    create_app(stats=FakeStats(), edits=FakeEdits(), health_checks={}, metrics=api).test_client().get("/health")
    return {name: set(m.counts) | set(m.observed) | {DROPPED}
            for name, m in (("producer", producer), ("processor", processor), ("api", api))}


def _referenced(template: dict[str, Any]) -> set[tuple[str, str]]:
    """(component, metric) of every Wikitide metric in the alarms and the dashboard."""
    found: set[tuple[str, str]] = set()

    def dimension(dimensions: list[dict[str, Any]], name: str) -> str:
        return next(d["Value"] for d in dimensions if d["Name"] == name)

    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            stats = [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
            if "MetricName" in props:
                stats.append(props)
            found |= {(dimension(s["Dimensions"], "Component"), s["MetricName"]) for s in stats
                      if s["Namespace"] == "Wikitide"}
        if resource["Type"] == "AWS::CloudWatch::Dashboard":
            body = json.loads(re.sub(r"\$\{([^}]+)\}", r"\1", props["DashboardBody"]["Fn::Sub"][0]))
            for widget in body["widgets"]:
                previous: list[Any] = []
                for line in widget["properties"].get("metrics", []):
                    # "." repeats the value above; "..." repeats everything up to the last value.
                    line = [x for x in line if not isinstance(x, dict)]
                    if line[0] == "...":
                        line = previous[: len(previous) - len(line) + 1] + line[1:]
                    line = [previous[i] if x == "." else x for i, x in enumerate(line)]
                    previous = line
                    if line[0] == "Wikitide":
                        found.add((line[line.index("Component") + 1], line[1]))
    return found


def test_every_watched_metric_is_published_by_its_component() -> None:
    template = stack.load_template(TEMPLATE)
    published = _published()
    referenced = _referenced(template)
    assert len(referenced) >= 20
    missing = {(component, name) for component, name in referenced if name not in published.get(component, set())}
    assert not missing


def test_every_alarm_notifies_the_topic_and_the_dashboard_shows_every_alarm() -> None:
    template = stack.load_template(TEMPLATE)
    alarms = [name for name, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert len(alarms) == 10
    for name in alarms:
        props = template["Resources"][name]["Properties"]
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    assert all("${" + name + ".Arn}" in body for name in alarms)
