"""The CloudFormation stack: where resource names come from, and how the local stack is provisioned from it.

Resource names are written once, in `cloudformation/wikitide.yaml`; every process reads them from the stack's
outputs. Locally the template is deployed to moto's CloudFormation (which creates the tables and the bucket),
and its Kinesis stream is created in kinesis-mock with the same name and shard count.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import ClientError

from wikitide.errors import ConfigError, DependencyUnavailable

logger = logging.getLogger(__name__)

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "cloudformation" / "wikitide.yaml"


@dataclass(frozen=True)
class StackResources:
    stream_name: str
    events_table: str
    counters_table: str
    dead_letter_table: str
    producer_state_table: str
    archive_bucket: str


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as data; CloudFormation's short tags (`!Ref`, `!Sub`, ...) become their `Fn::` forms."""
    return parse_template(path.read_text(encoding="utf-8"))


def parse_template(text: str) -> dict[str, Any]:
    """A template's YAML or JSON text as data, short tags as their `Fn::` forms."""

    class _Loader(yaml.SafeLoader):
        pass

    def _construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if suffix == "GetAtt":  # `!GetAtt Name.Attribute` is `{"Fn::GetAtt": ["Name", "Attribute"]}`
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {name: value}

    _Loader.add_multi_constructor("!", _construct)
    # A SafeLoader subclass (only CloudFormation's short tags added): bandit cannot see that.
    loaded = yaml.load(text, Loader=_Loader)  # noqa: S506  # nosec B506
    if not isinstance(loaded, dict):
        raise ConfigError("a CloudFormation template must be a mapping")
    return loaded


def read_outputs(cloudformation: Any, stack_name: str) -> StackResources:
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        raise ConfigError(
            f"CloudFormation stack {stack_name!r} not found (set WIKITIDE_STACK, or provision it first): {exc}"
        ) from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    try:
        return StackResources(
            stream_name=outputs["StreamName"],
            events_table=outputs["EventsTableName"],
            counters_table=outputs["CountersTableName"],
            dead_letter_table=outputs["DeadLetterTableName"],
            producer_state_table=outputs["ProducerStateTableName"],
            archive_bucket=outputs["ArchiveBucketName"],
        )
    except KeyError as exc:
        raise ConfigError(f"stack {stack_name!r} has no output {exc.args[0]!r}") from exc


def deploy_local(
    cloudformation: Any,
    kinesis: Any,
    stack_name: str,
    *,
    parameters: dict[str, str] | None = None,
    template_path: Path = TEMPLATE_PATH,
    timeout: float = 60.0,
) -> StackResources:
    """Create (or update) the stack in the local CloudFormation and its stream in the local Kinesis. Idempotent."""
    template = load_template(template_path)
    body = template_path.read_text(encoding="utf-8")
    params = [{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()]
    if _stack_exists(cloudformation, stack_name):
        try:
            cloudformation.update_stack(StackName=stack_name, TemplateBody=body, Parameters=params)
        except ClientError as exc:
            if "No updates" not in str(exc):
                raise
    else:
        cloudformation.create_stack(StackName=stack_name, TemplateBody=body, Parameters=params)
    _wait_complete(cloudformation, stack_name, timeout)
    resources = read_outputs(cloudformation, stack_name)
    shard_count = resolve_shard_count(template, parameters or {})
    _ensure_stream(kinesis, resources.stream_name, shard_count, timeout)
    return resources


def _stack_exists(cloudformation: Any, stack_name: str) -> bool:
    try:
        cloudformation.describe_stacks(StackName=stack_name)
    except ClientError:
        return False
    return True


def _wait_complete(cloudformation: Any, stack_name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"]
        if status.endswith("_COMPLETE") and "ROLLBACK" not in status:
            return
        if "FAILED" in status or "ROLLBACK" in status:
            raise DependencyUnavailable(f"stack {stack_name} ended in {status}")
        time.sleep(0.2)
    raise DependencyUnavailable(f"stack {stack_name} not complete after {timeout:.0f}s")


def resolve_shard_count(template: dict[str, Any], parameters: dict[str, str]) -> int:
    """The stream's shard count as the template resolves it with these parameters (the local stack runs the
    stream PROVISIONED: an `Fn::If` on the stream mode resolves to the `ShardCount` parameter it refers to)."""
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Kinesis::Stream":
            value = resource["Properties"]["ShardCount"]
            if isinstance(value, int | str):
                return int(value)
            names = [name for name in _refs(value) if name in template.get("Parameters", {})]
            if len(names) != 1:
                raise ConfigError(f"cannot resolve the stream's ShardCount locally: {value!r}")
            return int(parameters.get(names[0], template["Parameters"][names[0]]["Default"]))
    raise ConfigError("the template defines no AWS::Kinesis::Stream")


def _refs(value: Any) -> list[str]:
    """Every name a `Ref` inside `value` refers to, in order."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return [value["Ref"]]
        return [name for item in value.values() for name in _refs(item)]
    if isinstance(value, list):
        return [name for item in value for name in _refs(item)]
    return []


def reconcile_stream(kinesis: Any, name: str, shard_count: int, *, timeout: float = 60.0) -> int | None:
    """Make the local Kinesis's stream (kinesis-mock, where the pipeline's stream lives on the local stack) match
    the template's shard count after a deploy: create it when missing, else `UpdateShardCount` (uniform scaling,
    so at most double or half per call, as on AWS). Returns the open shard count before, or None when unchanged."""
    _ensure_stream(kinesis, name, shard_count, timeout)
    current = int(kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["OpenShardCount"])
    if current == shard_count:
        return None
    try:
        kinesis.update_shard_count(StreamName=name, TargetShardCount=shard_count, ScalingType="UNIFORM_SCALING")
    except ClientError as exc:
        raise ConfigError(f"cannot reshard {name} from {current} to {shard_count} shards: {exc}") from exc
    _wait_active(kinesis, name, timeout)
    return current


def _ensure_stream(kinesis: Any, name: str, shard_count: int, timeout: float) -> None:
    try:
        kinesis.create_stream(StreamName=name, ShardCount=shard_count)
        logger.info("created Kinesis stream %s with %d shards", name, shard_count)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
    _wait_active(kinesis, name, timeout)


def _wait_active(kinesis: Any, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if summary["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.2)
    raise DependencyUnavailable(f"stream {name} not ACTIVE after {timeout:.0f}s")


def reconcile_indexes(dynamodb: Any, stack_name: str, template: dict[str, Any]) -> list[str]:
    """Create the global secondary indexes the template gives a table and the table lacks; return them as
    `table/index`. For the local stack only: moto's CloudFormation answers an update that adds an index to a table
    with UPDATE_COMPLETE and creates no index (measured with moto 5), while its UpdateTable does create one. Only
    tables named by a literal or by `${AWS::StackName}` in a `Fn::Sub` are resolved; indexes are never removed."""
    created = []
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        properties = resource["Properties"]
        name = _table_name(properties.get("TableName"), stack_name)
        wanted = properties.get("GlobalSecondaryIndexes") or []
        if name is None or not wanted:
            continue
        have = {index["IndexName"] for index in dynamodb.describe_table(TableName=name)["Table"].get(
            "GlobalSecondaryIndexes", [])}
        for index in wanted:
            if index["IndexName"] in have:
                continue
            keys = {key["AttributeName"] for key in index["KeySchema"]}
            definitions = [d for d in properties["AttributeDefinitions"] if d["AttributeName"] in keys]
            dynamodb.update_table(
                TableName=name, AttributeDefinitions=definitions,
                GlobalSecondaryIndexUpdates=[{"Create": {
                    "IndexName": index["IndexName"], "KeySchema": index["KeySchema"],
                    "Projection": index["Projection"]}}],
            )
            created.append(f"{name}/{index['IndexName']}")
    return created


def _table_name(value: Any, stack_name: str) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        resolved = value["Fn::Sub"].replace("${AWS::StackName}", stack_name)
        return None if "${" in resolved else resolved
    return None
