"""The metrics port, recorder and publisher with hand-written fakes: what each process measures, and that a
sink that fails or hangs never blocks or fails the data path (its datums are dropped and counted)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from api import create_app
from kcl_app.bootstrap import BatchHandler
from kcl_app.processor import ChangeProcessor
from producer.service import Producer
from producer.sse_source import SourceEvent
from tests.unit.fakes import FakeKinesis, fake_stores
from tests.unit.test_api_routes import DownStats, FakeEdits, FakeStats
from tests.unit.test_processor import ARRIVAL_MS, Checkpointer, Initialize, Input, _recorded, _records
from wikitide.errors import DependencyUnavailable
from wikitide.metrics import open_metrics
from wikitide.metrics.cloudwatch import CloudWatchSink
from wikitide.metrics.publisher import PeriodicPublisher
from wikitide.metrics.recorder import DROPPED, MAX_VALUES_PER_DATUM, Datum, MetricsRecorder, rounded
from wikitide.metrics.report import format_table, summarise, window
from wikitide.settings import Settings


class RecordingMetrics:
    """A `Metrics` that keeps every call, for asserting what a process measured."""

    def __init__(self) -> None:
        self.counts: dict[str, float] = {}
        self.observed: dict[str, list[float]] = {}

    def count(self, name: str, value: float = 1.0) -> None:
        self.counts[name] = self.counts.get(name, 0.0) + value

    def observe(self, name: str, value: float, unit: str = "Milliseconds") -> None:
        self.observed.setdefault(name, []).append(value)


class FakeSink:
    def __init__(self, *, fail: bool = False, gate: threading.Event | None = None) -> None:
        self.sent: list[Datum] = []
        self.fail = fail
        self.gate = gate
        self.entered = threading.Event()

    def send(self, datums: Sequence[Datum]) -> None:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail:
            raise DependencyUnavailable("fake CloudWatch is down")
        self.sent.extend(datums)


def _by_name(datums: Sequence[Datum]) -> dict[str, list[Datum]]:
    found: dict[str, list[Datum]] = {}
    for datum in datums:
        found.setdefault(datum.name, []).append(datum)
    return found


def test_counters_sum_per_interval_and_stay_published_as_zero_when_idle() -> None:
    recorder = MetricsRecorder(lambda: 1000.0)
    recorder.count("EventsRead")
    recorder.count("EventsRead", 4)
    first = _by_name(recorder.drain())
    assert first["EventsRead"][0].values == (5.0,) and first["EventsRead"][0].counts == (1.0,)
    second = _by_name(recorder.drain())
    assert second["EventsRead"][0].values == (0.0,)


def test_observations_become_a_bounded_histogram_of_rounded_values() -> None:
    recorder = MetricsRecorder(lambda: 1000.0)
    for value in (101.0, 104.0, 99.4, 2_345.0, float("nan"), float("inf")):
        recorder.observe("Latency", value)
    (datum,) = recorder.drain()
    assert dict(zip(datum.values, datum.counts, strict=True)) == {99.0: 1.0, 100.0: 2.0, 2300.0: 1.0}
    assert datum.unit == "Milliseconds" and datum.sample_count == 4
    assert recorder.drain() == []  # observations are per interval
    assert rounded(0.0) == 0.0 and rounded(-0.0456) == -0.046 and rounded(123_456) == 120_000


def test_a_histogram_wider_than_cloudwatch_takes_is_split_over_datums() -> None:
    recorder = MetricsRecorder(lambda: 1000.0)
    for value in range(1, 100_000, 7):
        recorder.observe("Wide", float(value))
    datums = recorder.drain()
    assert len(datums) > 1 and all(len(d.values) <= MAX_VALUES_PER_DATUM for d in datums)
    assert sum(d.sample_count for d in datums) == len(range(1, 100_000, 7))


def test_a_failing_sink_drops_the_interval_and_counts_what_it_dropped() -> None:
    recorder = MetricsRecorder(lambda: 1000.0)
    sink = FakeSink(fail=True)
    publisher = PeriodicPublisher(recorder, sink, interval=3600)
    recorder.count("EventsRead", 3)
    recorder.observe("Latency", 5.0)
    assert publisher.publish_once() == 0
    assert (publisher.failures, publisher.dropped) == (1, 2)
    sink.fail = False
    assert publisher.publish_once() > 0
    sent = _by_name(sink.sent)
    assert sent[DROPPED][0].values == (2.0,)
    assert sent["EventsRead"][0].values == (0.0,)  # the failed interval's 3 are not sent twice


def test_a_hung_sink_never_blocks_the_data_path_and_close_is_bounded() -> None:
    recorder = MetricsRecorder(time.time)
    gate = threading.Event()
    sink = FakeSink(gate=gate)
    publisher = PeriodicPublisher(recorder, sink, interval=0.01).start()
    recorder.count("EventsRead")
    assert sink.entered.wait(10), "the publisher never called the sink"
    done = threading.Event()

    def measure() -> None:
        for _ in range(1000):
            recorder.count("EventsRead")
            recorder.observe("Latency", 1.0)
        done.set()

    threading.Thread(target=measure, daemon=True).start()
    assert done.wait(10), "recording waited for the hung sink"
    started = time.monotonic()
    publisher.close(timeout=0.2)
    assert time.monotonic() - started < 2.0
    gate.set()


def test_the_cloudwatch_sink_sends_values_and_counts_with_the_stack_and_component() -> None:
    class Client:
        def __init__(self) -> None:
            self.calls: list[dict] = []

        def put_metric_data(self, **kwargs: object) -> None:
            self.calls.append(kwargs)

    client = Client()
    datums = [Datum(f"M{i}", "Count", (float(i),), (1.0,), 1_700_000_000.0) for i in range(250)]
    CloudWatchSink(client, stack="wt-prod", component="producer").send(datums)
    assert [len(c["MetricData"]) for c in client.calls] == [100, 100, 50]
    first = client.calls[0]["MetricData"][1]
    assert first["Dimensions"] == [{"Name": "Stack", "Value": "wt-prod"}, {"Name": "Component", "Value": "producer"}]
    assert (first["Values"], first["Counts"], first["Unit"]) == ([1.0], [1.0], "Count")
    assert first["Timestamp"] == datetime.fromtimestamp(1_700_000_000, UTC)


@pytest.mark.parametrize("error", [
    ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "PutMetricData"),
    EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
])
def test_the_cloudwatch_sink_turns_client_errors_into_dependency_unavailable(error: Exception) -> None:
    class Client:
        def put_metric_data(self, **kwargs: object) -> None:
            raise error

    with pytest.raises(DependencyUnavailable):
        CloudWatchSink(Client(), stack="s", component="api").send([Datum("M", "Count", (1.0,), (1.0,), 0.0)])


def test_metrics_are_off_unless_asked_for() -> None:
    handle = open_metrics(Settings.from_env({}), "producer")
    handle.metrics.count("EventsRead")
    handle.close()
    assert Settings.from_env({"WIKITIDE_METRICS": "cloudwatch"}).metrics == "cloudwatch"


def _event(n: int) -> SourceEvent:
    data = {"meta": {"id": f"m{n}", "dt": "2024-01-01T00:00:00Z", "domain": "en.wikipedia.org"},
            "type": "edit", "wiki": "enwiki", "title": f"P{n % 3}", "revision": {"new": n}}
    return SourceEvent(data=json.dumps(data).encode(), id=f"id-{n}")


def test_the_producer_counts_what_it_read_wrote_and_rejected() -> None:
    metrics = RecordingMetrics()
    source = [_event(n) for n in range(40)] + [SourceEvent(data=b"{not json", id="bad")]
    Producer(iter(source), FakeKinesis(), linger=0.01, metrics=metrics).run(threading.Event())
    assert metrics.counts["EventsRead"] == 41
    assert metrics.counts["EventsWritten"] == 40
    assert metrics.counts["EventsRejected"] == 1
    assert metrics.counts["Gaps"] == 0
    assert metrics.observed["BacklogEntries"] and max(metrics.observed["BacklogEntries"]) <= 41


def test_the_processor_measures_each_stored_batch() -> None:
    recorded = _recorded(120)
    payloads = [p for _, p in recorded]
    stores, *_ = fake_stores()
    metrics = RecordingMetrics()
    processor = ChangeProcessor(BatchHandler(stores), metrics=metrics, wall_clock=lambda: ARRIVAL_MS / 1000)
    processor.initialize(Initialize())
    records = _records(payloads + [payloads[0], b"{not json"])
    processor.process_records(Input(records, Checkpointer(), millis_behind_latest=1234))
    expected_keys = {key for key, _ in recorded}
    assert metrics.counts["RecordsProcessed"] == 122
    assert metrics.counts["EventsClaimed"] == len(expected_keys)
    assert metrics.counts["Duplicates"] == 122 - 1 - len(expected_keys)
    assert metrics.counts["DeadLetters"] == 1
    assert metrics.observed["MillisBehindLatest"] == [1234]
    oldest = min(datetime.fromisoformat(json.loads(p)["meta"]["dt"].replace("Z", "+00:00")) for p in payloads)
    assert metrics.observed["OldestEventAge"] == [pytest.approx(ARRIVAL_MS - oldest.timestamp() * 1000)]
    assert len(metrics.observed["BatchDuration"]) == 1


def test_the_api_counts_requests_latency_errors_and_fallback_reads() -> None:
    metrics = RecordingMetrics()
    app = create_app(stats=FakeStats(), edits=FakeEdits(), health_checks={}, metrics=metrics)
    client = app.test_client()
    assert client.get("/v1/stats?window=5m").status_code == 200
    assert client.get("/v1/stats?window=7m").status_code == 400
    assert client.get("/nowhere").status_code == 404
    down = create_app(stats=DownStats(), edits=FakeEdits(), health_checks={}, metrics=metrics).test_client()
    assert down.get("/v1/stats?window=5m").status_code == 503
    assert metrics.counts["Requests"] == 4
    assert (metrics.counts["Status4xx"], metrics.counts["Status5xx"]) == (2, 1)
    assert len(metrics.observed["Latency"]) == 4


def test_fallback_reads_are_counted() -> None:
    from api.fallback_stats import FallbackStats

    metrics = RecordingMetrics()
    stats = FallbackStats(DownStats(), lambda: FakeStats(), lambda: True, metrics=metrics)
    stats.latest_minute()
    stats.latest_minute()
    assert metrics.counts["FallbackReads"] == 2


def test_the_report_summarises_datapoints_into_one_row_per_metric() -> None:
    row = summarise("api", "Latency", [
        {"SampleCount": 3, "Sum": 30.0, "Maximum": 20.0, "Unit": "Milliseconds"},
        {"SampleCount": 1, "Sum": 10.0, "Maximum": 10.0, "Unit": "Milliseconds"},
    ])
    assert row is not None and (row.samples, row.sum, row.average, row.maximum) == (4, 40.0, 10.0, 20.0)
    assert row.p99 is None
    single = summarise("api", "Latency", [{"SampleCount": 2, "Sum": 4.0, "Maximum": 3.0,
                                           "ExtendedStatistics": {"p50": 1.0, "p99": 3.0}}])
    assert single is not None and (single.p50, single.p99) == (1.0, 3.0)
    assert summarise("api", "Latency", []) is None
    table = format_table([row], 5)
    assert "Latency" in table.splitlines()[1] and "P99" in table.splitlines()[0]
    assert format_table([], 5) == "no metrics in the last 5 minutes"


def test_the_report_asks_once_per_metric_when_the_listing_repeats_it() -> None:
    from wikitide.metrics.report import read_rows

    dims = [{"Name": "Stack", "Value": "s"}, {"Name": "Component", "Value": "api"}]

    class Client:
        asked: list[str] = []

        def get_paginator(self, name: str) -> Client:
            return self

        def paginate(self, **kwargs: object) -> list[dict]:
            return [{"Metrics": [{"MetricName": "Requests", "Dimensions": dims}] * 3},
                    {"Metrics": [{"MetricName": "Requests", "Dimensions": dims[::-1]}]}]

        def get_metric_statistics(self, **kwargs: object) -> dict:
            self.asked.append(str(kwargs["MetricName"]))
            return {"Datapoints": [{"SampleCount": 2, "Sum": 7.0, "Maximum": 4.0, "Unit": "Count"}]}

    client = Client()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = read_rows(client, "s", start, start.replace(minute=5))
    assert client.asked == ["Requests"] and [(r.component, r.metric, r.sum) for r in rows] == [("api", "Requests", 7.0)]


def test_the_report_window_holds_a_datum_published_in_the_current_second() -> None:
    now = datetime(2026, 12, 3, 16, 0, 41, 900_000, tzinfo=UTC)
    start, end = window(now, 5)
    # CloudWatch compares timestamps with the end cut to whole seconds: it must still lie after `now`.
    assert end.replace(microsecond=0) > now and end - now <= timedelta(seconds=1)
    assert end - start == timedelta(minutes=5)
