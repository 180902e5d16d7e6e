"""`wikitide deploy` against moto's CloudFormation (the local stack's moto_server): create, a parameter change, a
new table, the types moto does not know, a refused update and a template cfn-lint rejects."""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner, Result

from tests.template_edits import with_events_index
from wikitide import deploy as deployment
from wikitide.cli import cli
from wikitide.stack import TEMPLATE_PATH

pytestmark = pytest.mark.integration

EXTRA_TABLE = """
  ExtraTable:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-extra"
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - AttributeName: pk
          AttributeType: S
      KeySchema:
        - AttributeName: pk
          KeyType: HASH
"""


def _with_resources(tmp_path: Path, extra: str, name: str = "t.yaml") -> Path:
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    path = tmp_path / name
    path.write_text(text.replace("\nOutputs:\n", extra + "\nOutputs:\n", 1), encoding="utf-8")
    return path


def _deploy(stack: str, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["deploy", "--stack", stack, "--env", "local", *args], input=input)


def _stack_name() -> str:
    return f"wt-deploy-{uuid.uuid4().hex[:8]}"


def test_create_then_a_shard_count_change_then_nothing(local_stack: object) -> None:
    stack = _stack_name()
    created = _deploy(stack, "--yes")
    assert created.exit_code == 0, created.output
    assert f"Stack {stack}: create" in created.output
    assert "+ Add ChangeStream [AWS::Kinesis::Stream]" in created.output
    assert created.output.rstrip().endswith("CREATE_COMPLETE")

    resharded = _deploy(stack, "--param", "ShardCount=4", "--yes")
    assert resharded.exit_code == 0, resharded.output
    assert "parameter ShardCount: 2 -> 4" in resharded.output
    assert "Add " not in resharded.output and "Remove " not in resharded.output
    moto_kinesis = boto3.client("kinesis", endpoint_url=local_stack.env["AWS_ENDPOINT_URL_DYNAMODB"])  # type: ignore[attr-defined]
    summary = moto_kinesis.describe_stream_summary(StreamName=f"{stack}-changes")["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 4  # moto's own Kinesis, where moto's CloudFormation keeps the stream
    # ... and kinesis-mock, where the pipeline's stream lives on the local stack, follows the template.
    assert f"local Kinesis stream {stack}-changes: 2 -> 4 shards" in resharded.output
    local = boto3.client("kinesis").describe_stream_summary(StreamName=f"{stack}-changes")
    assert local["StreamDescriptionSummary"]["OpenShardCount"] == 4

    unchanged = _deploy(stack, "--yes")
    assert unchanged.exit_code == 0, unchanged.output
    assert "no changes" in unchanged.output  # ShardCount kept its deployed value, as `aws cloudformation deploy` does


def test_a_new_table_is_shown_asked_for_and_created(local_stack: object, tmp_path: Path) -> None:
    stack = _stack_name()
    assert _deploy(stack, "--yes").exit_code == 0
    template = _with_resources(tmp_path, EXTRA_TABLE)

    declined = _deploy(stack, "--template", str(template), input="n\n")
    assert "+ Add ExtraTable [AWS::DynamoDB::Table]" in declined.output
    assert declined.exit_code != 0
    dynamodb = boto3.client("dynamodb")
    assert f"{stack}-extra" not in dynamodb.list_tables(Limit=100)["TableNames"]

    applied = _deploy(stack, "--template", str(template), input="y\n")
    assert applied.exit_code == 0, applied.output
    assert dynamodb.describe_table(TableName=f"{stack}-extra")["Table"]["TableStatus"] == "ACTIVE"


def test_types_moto_does_not_know_are_skipped_and_named(local_stack: object, tmp_path: Path) -> None:
    cache = EXTRA_TABLE + """
  Cache:
    Type: AWS::ElastiCache::ReplicationGroup
    Properties:
      ReplicationGroupDescription: read model
      Engine: redis
      CacheNodeType: cache.t4g.small
      NumCacheClusters: 2
      AutomaticFailoverEnabled: true
"""
    template = _with_resources(tmp_path, cache)
    text = template.read_text(encoding="utf-8") + """  RedisHost:
    Value: !GetAtt Cache.PrimaryEndPoint.Address
"""
    template.write_text(text, encoding="utf-8")
    stack = _stack_name()
    result = _deploy(stack, "--template", str(template), "--yes")
    assert result.exit_code == 0, result.output
    assert "skipped Cache [AWS::ElastiCache::ReplicationGroup]" in result.output
    described = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    outputs = {o["OutputKey"] for o in described["Outputs"]}
    assert "StreamName" in outputs and "RedisHost" not in outputs


def test_a_refused_update_is_reported_and_changes_nothing(local_stack: object, tmp_path: Path) -> None:
    stack, other = _stack_name(), _stack_name()
    assert _deploy(stack, "--yes").exit_code == 0
    assert _deploy(other, "--yes").exit_code == 0
    cloudformation = boto3.client("cloudformation")
    before = cloudformation.get_template(StackName=stack)["TemplateBody"]
    # Valid for cfn-lint, refused by the service: a table under a name another stack's table has.
    clash = EXTRA_TABLE.replace('!Sub "${AWS::StackName}-extra"', f'"{other}-events"')
    result = _deploy(stack, "--template", str(_with_resources(tmp_path, clash)), "--yes")
    assert result.exit_code != 0
    assert isinstance(result.exception, deployment.DeployFailed), result.output
    assert "+ Add ExtraTable" in result.output
    assert cloudformation.get_template(StackName=stack)["TemplateBody"] == before
    status = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
    assert status in {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"}, status
    assert "rolled back to the deployed template" in str(result.exception)
    again = _deploy(stack, "--yes")
    assert again.exit_code == 0 and "no changes" in again.output, again.output


def test_a_template_cfn_lint_rejects_is_not_deployed(local_stack: object, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(TEMPLATE_PATH.read_text(encoding="utf-8").replace(
        "ShardCount: !If [IsOnDemand, !Ref \"AWS::NoValue\", !Ref ShardCount]",
        "ShardCount: !If [IsOnDemand, !Ref \"AWS::NoValue\", !Ref ShardCounts]"), encoding="utf-8")
    stack = _stack_name()
    result = _deploy(stack, "--template", str(broken), "--yes")
    assert result.exit_code != 0
    assert "cfn-lint found errors" in str(result.exception)
    assert stack not in {s["StackName"] for s in boto3.client("cloudformation").list_stacks()["StackSummaries"]}


def test_an_index_moto_leaves_out_is_added_by_the_deploy(local_stack: object, tmp_path: Path) -> None:
    """moto's CloudFormation reports an index added to a table as UPDATE_COMPLETE and creates none; the deploy adds
    it, and the table keeps its items."""
    stack = _stack_name()
    assert _deploy(stack, "--yes").exit_code == 0
    dynamodb = boto3.client("dynamodb")
    table = f"{stack}-events"
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "k"}, "wiki": {"S": "enwiki"}, "dt": {"S": "2026-12-02"}})
    template = tmp_path / "index.yaml"
    template.write_text(with_events_index(TEMPLATE_PATH.read_text(encoding="utf-8"), "by-wiki", ["wiki"]),
                        encoding="utf-8")
    result = _deploy(stack, "--template", str(template), "--yes")
    assert result.exit_code == 0, result.output
    assert "~ Modify EventsTable [AWS::DynamoDB::Table]" in result.output
    assert f"local DynamoDB index {table}/by-wiki: created" in result.output
    found = dynamodb.query(TableName=table, IndexName="by-wiki", KeyConditionExpression="wiki = :w",
                           ExpressionAttributeValues={":w": {"S": "enwiki"}})["Items"]
    assert [item["pk"]["S"] for item in found] == ["k"]
    again = _deploy(stack, "--template", str(template), "--yes")
    assert again.exit_code == 0 and "no changes" in again.output, again.output


def test_scale_is_a_deploy_of_the_shard_count_alone(local_stack: object) -> None:
    stack = _stack_name()
    missing = CliRunner().invoke(cli, ["scale", "--stack", stack, "--shards", "4", "--yes"])
    assert missing.exit_code != 0 and "deploy it first" in str(missing.exception)
    assert _deploy(stack, "--yes", "--param", "RetentionHours=48").exit_code == 0
    scaled = CliRunner().invoke(cli, ["scale", "--stack", stack, "--shards", "4", "--yes"])
    assert scaled.exit_code == 0, scaled.output
    assert "parameter ShardCount: 2 -> 4" in scaled.output
    assert "RetentionHours" not in scaled.output  # every other parameter kept as deployed
    assert f"local Kinesis stream {stack}-changes: 2 -> 4 shards" in scaled.output
    local = boto3.client("kinesis").describe_stream_summary(StreamName=f"{stack}-changes")
    assert local["StreamDescriptionSummary"]["OpenShardCount"] == 4
