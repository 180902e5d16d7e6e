"""The producer's Kinesis adapters (PutRecords; PutRecord side by side) against kinesis-mock, including entries
that fail and are retried."""

import json

import boto3
import pytest

from producer.batcher import to_entry
from producer.kinesis_writer import (
    AdaptiveKinesisWriter,
    AggregatingWriter,
    KinesisRecordWriter,
    KinesisWriter,
    make_writer,
)
from tests.conftest import RECENTCHANGE
from wikitide.aggregation import user_records
from wikitide.envelope import event_of
from wikitide.errors import DependencyUnavailable
from wikitide.settings import Settings

pytestmark = pytest.mark.integration


def _entries(count: int):
    path = RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson"
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:count]
    return [to_entry(line, None) for line in lines]


def _read_all(client, stream: str) -> list[bytes]:
    """Every stored event, out of its envelope (the payload as the producer received it), shard after shard, an
    aggregated record's events in their order."""
    data: list[bytes] = []
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = client.get_records(ShardIterator=iterator, Limit=1000)
            data.extend(event_of(user) for record in response["Records"] for _, user in user_records(record["Data"]))
            if not response["Records"] and response.get("MillisBehindLatest", 0) == 0:
                break
            iterator = response.get("NextShardIterator")
    return data


class _FailingEvery:
    """A botocore hook that makes every `nth` entry of each PutRecords call fail, as throttling does."""

    def __init__(self, nth: int, calls: int) -> None:
        self.nth, self.calls_left, self.failed = nth, calls, 0

    def __call__(self, params, **kwargs) -> None:
        if self.calls_left <= 0:
            return
        self.calls_left -= 1
        self.held = params["Records"]
        keep = [r for i, r in enumerate(params["Records"]) if i % self.nth]
        self.failed += len(params["Records"]) - len(keep)
        self._positions = [i for i in range(len(params["Records"])) if i % self.nth == 0]
        params["Records"] = keep

    def after(self, parsed, **kwargs) -> None:
        positions = getattr(self, "_positions", None)
        if positions is None:
            return
        self._positions = None
        results = list(parsed["Records"])
        for position in positions:
            results.insert(position, {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "test"})
        parsed["Records"] = results
        parsed["FailedRecordCount"] = len(positions)


def test_every_entry_arrives_exactly_once_when_some_fail(provisioned) -> None:
    client = boto3.client("kinesis")
    hook = _FailingEvery(nth=7, calls=2)
    client.meta.events.register("provide-client-params.kinesis.PutRecords", hook)
    client.meta.events.register("after-call.kinesis.PutRecords", hook.after)
    entries = _entries(300)
    KinesisWriter(client, provisioned.stream_name, fast_retries=True).put(entries)
    stored = _read_all(client, provisioned.stream_name)
    assert hook.failed > 0
    assert sorted(stored) == sorted(event_of(e.data) for e in entries)


def test_a_missing_stream_is_a_dependency_error(local_stack) -> None:
    writer = KinesisWriter(boto3.client("kinesis"), "no-such-stream", attempts=2, fast_retries=True)
    with pytest.raises(DependencyUnavailable):
        writer.put(_entries(1))


def test_records_keep_per_page_order(provisioned) -> None:
    client = boto3.client("kinesis")
    entries = [to_entry(json.dumps({"wiki": "enwiki", "title": "Hot", "n": n}), None) for n in range(200)]
    KinesisWriter(client, provisioned.stream_name).put(entries)
    stored = [json.loads(d)["n"] for d in _read_all(client, provisioned.stream_name)]
    assert stored == list(range(200))


def test_whole_calls_throttled_for_a_while_are_retried(provisioned) -> None:
    from botocore.exceptions import ClientError

    client = boto3.client("kinesis")
    throttled = {"left": 3}

    def throttle(**kwargs) -> None:
        if throttled["left"]:
            throttled["left"] -= 1
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "PutRecords"
            )

    client.meta.events.register("before-call.kinesis.PutRecords", throttle)
    entries = _entries(50)
    KinesisWriter(client, provisioned.stream_name, fast_retries=True).put(entries)
    assert throttled["left"] == 0
    assert sorted(_read_all(client, provisioned.stream_name)) == sorted(event_of(e.data) for e in entries)


def test_throttling_that_persists_ends_in_a_clear_error(provisioned) -> None:
    from botocore.exceptions import ClientError

    client = boto3.client("kinesis")

    def throttle(**kwargs) -> None:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "no"}}, "PutRecords")

    client.meta.events.register("before-call.kinesis.PutRecords", throttle)
    with pytest.raises(DependencyUnavailable, match="ProvisionedThroughputExceededException"):
        KinesisWriter(client, provisioned.stream_name, attempts=3, fast_retries=True).put(_entries(5))


def test_the_record_writer_keeps_page_order_across_pages_written_side_by_side(provisioned) -> None:
    client = boto3.client("kinesis")
    calls = []
    client.meta.events.register("before-call.kinesis.PutRecord", lambda **kwargs: calls.append(1))
    pages = ["Hot", "Cold", "Warm", "Dry"]
    entries = [to_entry(json.dumps({"wiki": "enwiki", "title": pages[n % 4], "n": n}), None) for n in range(120)]
    writer = KinesisRecordWriter(client, provisioned.stream_name, lanes=4)
    try:
        writer.put(entries)
    finally:
        writer.close()
    stored = [json.loads(d) for d in _read_all(client, provisioned.stream_name)]
    assert len(calls) == len(entries)  # one PutRecord per entry, no PutRecords
    assert sorted(s["n"] for s in stored) == list(range(120))
    for page in pages:
        assert [s["n"] for s in stored if s["title"] == page] == [n for n in range(120) if n % 4 == pages.index(page)]


def test_the_record_writer_retries_a_throttled_record_and_ends_in_a_clear_error_when_it_persists(
    provisioned,
) -> None:
    from botocore.exceptions import ClientError

    client = boto3.client("kinesis")
    throttled = {"left": 2}

    def throttle_twice(**kwargs) -> None:
        if throttled["left"]:
            throttled["left"] -= 1
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
                              "PutRecord")

    client.meta.events.register("before-call.kinesis.PutRecord", throttle_twice)
    entries = _entries(20)
    writer = KinesisRecordWriter(client, provisioned.stream_name, fast_retries=True)
    try:
        writer.put(entries)
    finally:
        writer.close()
    assert throttled["left"] == 0
    assert sorted(_read_all(client, provisioned.stream_name)) == sorted(event_of(e.data) for e in entries)

    def throttle_always(**kwargs) -> None:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "no"}}, "PutRecord")

    refusing = boto3.client("kinesis")
    refusing.meta.events.register("before-call.kinesis.PutRecord", throttle_always)
    writer = KinesisRecordWriter(refusing, provisioned.stream_name, attempts=3, fast_retries=True)
    try:
        with pytest.raises(DependencyUnavailable, match="ProvisionedThroughputExceededException"):
            writer.put(_entries(5))
    finally:
        writer.close()


def test_the_put_api_is_chosen_by_the_settings() -> None:
    from wikitide.errors import ConfigError

    assert isinstance(make_writer(None, "s", "records", aggregate=False), KinesisWriter)
    record_writer = make_writer(None, "s", "record", aggregate=False)
    assert isinstance(record_writer, KinesisRecordWriter)
    record_writer.close()
    assert Settings.from_env({}).kinesis_put == "records"
    assert Settings.from_env({"WIKITIDE_KINESIS_PUT": "record"}).kinesis_put == "record"
    assert Settings.from_env({"WIKITIDE_KINESIS_PUT": "auto"}).kinesis_put == "auto"
    adaptive = make_writer(None, "s", "auto", aggregate=False)
    assert isinstance(adaptive, AdaptiveKinesisWriter) and adaptive.current == "records"
    adaptive.close()
    aggregating = make_writer(None, "s", "auto")
    assert isinstance(aggregating, AggregatingWriter) and aggregating.max_call_entries == 500
    aggregating.close()
    assert Settings.from_env({}).kinesis_aggregate is True
    assert Settings.from_env({"WIKITIDE_KINESIS_AGGREGATE": "off"}).kinesis_aggregate is False
    with pytest.raises(ConfigError, match="WIKITIDE_KINESIS_AGGREGATE"):
        Settings.from_env({"WIKITIDE_KINESIS_AGGREGATE": "yes"})
    with pytest.raises(ConfigError, match="WIKITIDE_KINESIS_PUT"):
        Settings.from_env({"WIKITIDE_KINESIS_PUT": "batch"})
