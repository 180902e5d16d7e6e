"""The template family holds together: every cross-stack import names an export of the layer its parameter
points at, the code's stack outputs exist, and the local stack resolves the stream's shard count."""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import pytest

from wikitide import stack
from wikitide.errors import ConfigError

TEMPLATES = Path(stack.TEMPLATE_PATH).parent
# Which layer each stack-name parameter refers to.
LAYER_OF_PARAMETER = {
    "NetworkStackName": "network.yaml",
    "ImagesStackName": "images.yaml",
    "DataStackName": "wikitide.yaml",
    "CacheStackName": "cache.yaml",
}
IMPORT = re.compile(r"^\$\{(\w+StackName)\}-(\w+)$")


@functools.cache
def _parsed(name: str) -> dict[str, Any]:
    return stack.load_template(TEMPLATES / name)


def _template(name: str) -> dict[str, Any]:
    return copy.deepcopy(_parsed(name))


def _exports(template: dict[str, Any]) -> set[str]:
    names = set()
    for output in template["Outputs"].values():
        if "Export" in output:
            sub = output["Export"]["Name"]["Fn::Sub"]
            assert sub.startswith("${AWS::StackName}-"), sub
            names.add(sub.removeprefix("${AWS::StackName}-"))
    return names


def _imports(value: Any) -> list[str]:
    if isinstance(value, dict):
        if set(value) == {"Fn::ImportValue"}:
            return [value["Fn::ImportValue"]["Fn::Sub"]]
        return [found for item in value.values() for found in _imports(item)]
    if isinstance(value, list):
        return [found for item in value for found in _imports(item)]
    return []


@pytest.mark.parametrize("name", ["cache.yaml", "compute.yaml", "archive.yaml"])
def test_every_import_is_an_export_of_the_layer_it_names(name: str) -> None:
    template = _template(name)
    imports = _imports(template["Resources"])
    assert imports
    for imported in imports:
        match = IMPORT.match(imported)
        assert match, imported
        parameter, export = match.groups()
        assert parameter in template["Parameters"], imported
        assert export in _exports(_template(LAYER_OF_PARAMETER[parameter])), imported


def test_the_outputs_the_code_reads_are_in_the_data_layer() -> None:
    outputs = _template("wikitide.yaml")["Outputs"]

    class FakeCloudFormation:
        def describe_stacks(self, StackName: str) -> dict[str, Any]:  # noqa: N803 - boto3's spelling
            return {"Stacks": [{"Outputs": [{"OutputKey": k, "OutputValue": f"v-{k}"} for k in outputs]}]}

    resources = stack.read_outputs(FakeCloudFormation(), "s")
    assert resources.stream_name == "v-StreamName"
    assert resources.archive_bucket == "v-ArchiveBucketName"


def test_the_tasks_read_the_data_stack_the_redis_url_and_its_password() -> None:
    tasks = {
        name: resource["Properties"]["ContainerDefinitions"][0]
        for name, resource in _template("compute.yaml")["Resources"].items()
        if resource["Type"] == "AWS::ECS::TaskDefinition"
    }
    assert set(tasks) == {"ProducerTask", "KclTask", "ApiTask", "ShardScalerTask"}
    for name, container in tasks.items():
        env = {e["Name"]: e["Value"] for e in container["Environment"]}
        assert env["WIKITIDE_STACK"] == {"Ref": "DataStackName"}, name
        secrets = {s["Name"] for s in container.get("Secrets", [])}
        assert ("REDIS_URL" in env) == ("REDIS_PASSWORD" in secrets), name
    assert "REDIS_URL" not in {e["Name"] for e in tasks["ProducerTask"]["Environment"]}


def test_each_service_has_its_own_task_role_and_log_group() -> None:
    resources = _template("compute.yaml")["Resources"]
    tasks = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::ECS::TaskDefinition"]
    roles = [t["TaskRoleArn"]["Fn::GetAtt"][0] for t in tasks]
    groups = [t["ContainerDefinitions"][0]["LogConfiguration"]["Options"]["awslogs-group"]["Ref"] for t in tasks]
    assert len(set(roles)) == len(tasks) and len(set(groups)) == len(tasks)
    assert all(t["ExecutionRoleArn"]["Fn::GetAtt"][0] not in roles for t in tasks)
    assert all("RetentionInDays" in resources[g]["Properties"] for g in groups)


def test_the_archive_has_one_bucket_which_the_firehose_writes_and_the_code_reads() -> None:
    """One archive bucket in the family: the data layer's (its ArchiveBucketName output is what `wikitide archive`
    reads), with the lifecycle and protections; the archive layer's delivery stream writes into that one."""
    buckets = {
        (name, logical) for name in ("wikitide.yaml", "archive.yaml", "cache.yaml", "compute.yaml", "network.yaml")
        for logical, resource in _parsed(name)["Resources"].items() if resource["Type"] == "AWS::S3::Bucket"
    }
    assert buckets == {("wikitide.yaml", "ArchiveBucket"), ("wikitide.yaml", "AccessLogBucket")}
    data = _template("wikitide.yaml")
    bucket = data["Resources"]["ArchiveBucket"]["Properties"]
    assert {rule["Id"] for rule in bucket["LifecycleConfiguration"]["Rules"]} >= {"raw-events", "delivery-errors"}
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert data["Outputs"]["ArchiveBucketName"]["Value"] == {"Ref": "ArchiveBucket"}
    delivery = _template("archive.yaml")["Resources"]["DeliveryStream"]["Properties"]
    assert delivery["ExtendedS3DestinationConfiguration"]["BucketARN"] == {
        "Fn::ImportValue": {"Fn::Sub": "${DataStackName}-ArchiveBucketArn"}}
    assert delivery["KinesisStreamSourceConfiguration"]["KinesisStreamARN"] == {
        "Fn::ImportValue": {"Fn::Sub": "${DataStackName}-StreamArn"}}


def test_the_local_stack_resolves_the_shard_count_through_the_stream_mode() -> None:
    template = _template("wikitide.yaml")
    assert stack.resolve_shard_count(template, {}) == 2
    assert stack.resolve_shard_count(template, {"ShardCount": "4"}) == 4


def test_a_shard_count_it_cannot_resolve_is_a_clear_error() -> None:
    template = {
        "Parameters": {"A": {"Default": 1}, "B": {"Default": 2}},
        "Resources": {"S": {"Type": "AWS::Kinesis::Stream",
                            "Properties": {"ShardCount": {"Fn::If": ["C", {"Ref": "A"}, {"Ref": "B"}]}}}},
    }
    with pytest.raises(ConfigError, match="ShardCount"):
        stack.resolve_shard_count(template, {})


def test_the_api_tasks_get_the_control_token_from_a_secret_only_their_start_may_read() -> None:
    from wikitide.settings import Settings

    template = _template("compute.yaml")
    resources = template["Resources"]
    api = resources["ApiTask"]["Properties"]["ContainerDefinitions"][0]
    secrets = {s["Name"]: s["ValueFrom"] for s in api["Secrets"]}
    assert secrets["WIKITIDE_CONTROL_TOKEN"] == {"Ref": "ControlToken"}
    assert Settings.from_env({"WIKITIDE_CONTROL_TOKEN": "t"}).control_token == "t"  # the name the code reads
    others = [r["Properties"]["ContainerDefinitions"][0] for name, r in resources.items()
              if r["Type"] == "AWS::ECS::TaskDefinition" and name != "ApiTask"]
    assert all("WIKITIDE_CONTROL_TOKEN" not in {s["Name"] for s in c.get("Secrets", [])} for c in others)
    statements = resources["ExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    readers = [s for s in statements if s["Action"] == "secretsmanager:GetSecretValue"]
    assert {"Ref": "ControlToken"} in [s["Resource"] for s in readers]
    assert resources["ControlToken"]["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
    assert template["Outputs"]["ControlTokenSecretArn"]["Value"] == {"Ref": "ControlToken"}


def test_gunicorn_keeps_idle_connections_longer_than_the_load_balancer() -> None:
    template = _template("compute.yaml")
    parameters = template["Parameters"]
    assert parameters["ApiKeepAliveSeconds"]["Default"] > parameters["AlbIdleTimeoutSeconds"]["Default"]
    balancer = template["Resources"]["LoadBalancer"]["Properties"]["LoadBalancerAttributes"]
    assert {"Key": "idle_timeout.timeout_seconds", "Value": {"Ref": "AlbIdleTimeoutSeconds"}} in balancer
    api = template["Resources"]["ApiTask"]["Properties"]["ContainerDefinitions"][0]
    env = {e["Name"]: e["Value"] for e in api["Environment"]}
    assert env["GUNICORN_CMD_ARGS"] == {"Fn::Sub": "--keep-alive ${ApiKeepAliveSeconds}"}


def test_gunicorn_cmd_args_override_the_served_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """The task's GUNICORN_CMD_ARGS must win over `api.serving`'s keepalive (gunicorn reads the file first)."""
    from gunicorn.app.wsgiapp import WSGIApplication

    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--keep-alive 75")
    monkeypatch.setattr("sys.argv", ["gunicorn", "--config", "python:api.serving", "api:create_app()"])
    assert WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").cfg.keepalive == 75
