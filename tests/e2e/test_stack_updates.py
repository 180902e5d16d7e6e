"""Stack updates the running pipeline survives: `wikitide deploy` while a real KCL worker (`wikitide consume`)
processes recorded traffic, on the local stack (moto's CloudFormation, kinesis-mock, redis-server).

1. `ShardCount` 2 -> 4: moto updates the stack, and `wikitide deploy` reshards kinesis-mock's stream to the
   template's count (`stack.reconcile_stream`, uniform scaling, as on AWS); the worker takes the children.
2. A template change that adds an index to the events table (wiki, event time); the check then reads each wiki's
   events through it.
3. An update the service refuses (a table under the name of the KCL's lease table, which the worker created and
   uses): reported, rolled back to the deployed template, nothing else touched.

After each, the check waits (bounded) for the pipeline's own progress, every shard's checkpoint at or past the last
record sent to it (`tests.fleet.caught_up`), then compares every store and the API with what was sent, computed
from the events' JSON alone (`tests.fleet.checker`): each distinct event once, nothing lost.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from click.testing import CliRunner, Result

from api import create_app
from tests.conftest import RECENTCHANGE
from tests.fleet import caught_up, checker
from tests.fleet.harness import Fleet, LeaseTable, wait_until, write_fleet_properties
from tests.fleet.traffic import Traffic, load_events
from tests.template_edits import with_events_index
from wikitide.cli import cli
from wikitide.metrics import NULL_METRICS
from wikitide.settings import Settings
from wikitide.stack import TEMPLATE_PATH

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

RECORDING = RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson"
REDIS_DB = 4  # a database of its own: other tests flush db 0
RATE = 20.0  # records/s: enough to keep every shard moving, little for a loaded machine
# Bounds, not waits: each check returns as soon as every checkpoint is there. The first covers the JVM's start
# and KCL 3's first shard sync (up to 30 s of its own); the reshard's, the children's lease assignment.
FIRST_CATCH_UP = 420.0
CATCH_UP = 300.0
INDEX = "by-wiki-time"

# Valid for cfn-lint, refused by the service: the name of a table that exists outside the template (the KCL's
# lease table, which the worker created and is using).
CLASHING_TABLE = """
  LeaseTableAgain:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-kcl"
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - AttributeName: pk
          AttributeType: S
      KeySchema:
        - AttributeName: pk
          KeyType: HASH
"""


def _with_index(tmp_path: Path) -> Path:
    path = tmp_path / "with-index.yaml"
    path.write_text(with_events_index(TEMPLATE_PATH.read_text(encoding="utf-8"), INDEX, ["wiki", "dt"]),
                    encoding="utf-8")
    return path


def _with_clash(template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "clash.yaml"
    path.write_text(template.read_text(encoding="utf-8").replace("\nOutputs:\n", CLASHING_TABLE + "\nOutputs:\n", 1),
                    encoding="utf-8")
    return path


def _deploy(stack: str, *args: str) -> Result:
    """`wikitide deploy` as the operator runs it, against the local stack's moto and kinesis-mock."""
    return CliRunner().invoke(cli, ["deploy", "--stack", stack, "--env", "local", *args, "--yes"])


class Pipeline:
    """The stack's worker, traffic and views; `check()` is the exactly-once check after each update."""

    def __init__(self, env: dict[str, str], stack: str, traffic: Traffic, measure: Callable[[str, object], None]):
        self.stack = stack
        self.traffic = traffic
        self.kinesis = boto3.client("kinesis")
        self.dynamodb = boto3.client("dynamodb")
        self.redis = redis.Redis.from_url(env["REDIS_URL"], decode_responses=True)
        self.leases = LeaseTable(self.dynamodb, f"{stack}-kcl")
        self.api = create_app(Settings.from_env(env), metrics=NULL_METRICS).test_client()
        self.measure = measure

    def get_json(self, path: str) -> Any:
        response = self.api.get(path)
        assert response.status_code == 200, (path, response.get_data(as_text=True))
        return response.get_json()

    def check(self, step: str, timeout: float = CATCH_UP, hold: bool = False) -> list[Any]:
        """Pause the traffic, wait until every shard is caught up, compare every store and the API once; return
        what was sent. The traffic resumes afterwards, unless `hold` (the caller reads the quiet stores, then
        calls `traffic.resume()`)."""
        self.traffic.pause()
        resume = True
        try:
            assert not self.traffic.errors, self.traffic.errors[:5]
            sent = self.traffic.sent
            states: list[caught_up.ShardState] = []

            def all_caught_up() -> bool:
                states[:] = caught_up.shard_states(
                    sent, self.leases.leases(), caught_up.kinesis_shards(self.kinesis, f"{self.stack}-changes"))
                return not caught_up.behind(states)

            started = time.monotonic()
            wait_until(all_caught_up, timeout=timeout, interval=1.0,
                       describe=lambda: "shards behind: " + "; ".join(map(str, caught_up.behind(states))))
            self.measure(f"{step}: checkpoints caught up after the traffic paused",
                         f"{time.monotonic() - started:.1f}s ({len(sent)} records sent)")
            events = checker.DynamoEventsView(self.dynamodb, f"{self.stack}-events")
            report = checker.check(checker.Expected.of(sent), [
                events,
                checker.DynamoCountersView(self.dynamodb, f"{self.stack}-counters"),
                checker.RedisMinutesView(self.redis),
                checker.RedisWikiMinutesView(self.redis),
                checker.RedisPagesView(self.redis),
                checker.ApiStatsView(self.get_json),
            ])
            assert report.ok, f"{step}:\n{report}"
            assert self.get_json("/v1/pages/top?window=24h&limit=5")["pages"], step
            resume = not hold
            return sent
        finally:
            if resume:
                self.traffic.resume()


@pytest.fixture
def pipeline(local_stack: Any, tmp_path: Path, measure: Callable[[str, object], None]) -> Iterator[Pipeline]:
    stack = f"wt-upd-{uuid.uuid4().hex[:8]}"
    created = _deploy(stack)
    assert created.exit_code == 0, created.output
    redis_url = local_stack.env["REDIS_URL"].rsplit("/", 1)[0] + f"/{REDIS_DB}"
    redis.Redis.from_url(redis_url).flushdb()
    env = {**local_stack.env, "WIKITIDE_STACK": stack, "REDIS_URL": redis_url}
    fleet = Fleet(env, write_fleet_properties(tmp_path / "fleet.properties"), tmp_path)
    traffic = Traffic(boto3.client("kinesis"), f"{stack}-changes", load_events(RECORDING), rate=RATE)
    try:
        fleet.start("w1")
        traffic.start()
        yield Pipeline(env, stack, traffic, measure)
        worker = fleet.workers["w1"]
        assert worker.is_running(), worker.tail()
    finally:
        traffic.stop()
        fleet.stop_all()


def test_the_pipeline_counts_every_event_once_across_three_stack_updates(pipeline: Pipeline, tmp_path: Path) -> None:
    stack = pipeline.stack
    cloudformation = boto3.client("cloudformation")
    pipeline.check("before any update", timeout=FIRST_CATCH_UP)

    resharded = _deploy(stack, "--param", "ShardCount=4")
    assert resharded.exit_code == 0, resharded.output
    assert "parameter ShardCount: 2 -> 4" in resharded.output
    assert f"local Kinesis stream {stack}-changes: 2 -> 4 shards" in resharded.output
    summary = pipeline.kinesis.describe_stream_summary(StreamName=f"{stack}-changes")["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 4
    sent = pipeline.check("ShardCount 2 -> 4")
    shards = caught_up.kinesis_shards(pipeline.kinesis, f"{stack}-changes")
    children = {shard for shard, described in shards.items() if described.get("ParentShardId")}
    assert len(children) == 4
    assert {record.shard_id for record in sent} & children  # the check covered records on the new shards

    with_index = _with_index(tmp_path)
    indexed = _deploy(stack, "--template", str(with_index))
    assert indexed.exit_code == 0, indexed.output
    assert "~ Modify EventsTable [AWS::DynamoDB::Table]" in indexed.output
    sent = pipeline.check("an index added to the events table", hold=True)
    # Each wiki's distinct events, read through the new index, equal the source's.
    wanted = Counter(record.wiki for record in {r.dedup_key: r for r in sent}.values())
    for wiki, count in wanted.most_common(3):
        pages = pipeline.dynamodb.get_paginator("query").paginate(
            TableName=f"{stack}-events", IndexName=INDEX, KeyConditionExpression="wiki = :w",
            ExpressionAttributeValues={":w": {"S": wiki}})
        keys = [item["pk"]["S"] for page in pages for item in page["Items"]]
        assert len(keys) == len(set(keys)) == count, wiki
    pipeline.traffic.resume()

    before = cloudformation.get_template(StackName=stack)["TemplateBody"]
    refused = _deploy(stack, "--template", str(_with_clash(with_index, tmp_path)))
    assert refused.exit_code != 0
    assert "+ Add LeaseTableAgain [AWS::DynamoDB::Table]" in refused.output, refused.output
    assert "rolled back to the deployed template" in str(refused.exception)
    assert cloudformation.get_template(StackName=stack)["TemplateBody"] == before
    pipeline.check("a refused update, rolled back")
