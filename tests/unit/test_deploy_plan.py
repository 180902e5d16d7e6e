"""The deploy preview, computed from templates and parameters (no service)."""

from __future__ import annotations

import pytest

from wikitide import deploy
from wikitide.errors import ConfigError

OLD = {
    "Parameters": {"ShardCount": {"Type": "Number", "Default": 2}, "Mode": {"Type": "String", "Default": "A"}},
    "Resources": {
        "Stream": {"Type": "AWS::Kinesis::Stream", "Properties": {"ShardCount": {"Ref": "ShardCount"}}},
        "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {"BillingMode": "PAY_PER_REQUEST", "A": 1}},
        "Gone": {"Type": "AWS::S3::Bucket"},
    },
    "Outputs": {"StreamName": {"Value": {"Ref": "Stream"}}},
}


def test_the_preview_names_each_added_removed_and_modified_resource_and_property() -> None:
    new = {
        **OLD,
        "Resources": {
            "Stream": OLD["Resources"]["Stream"],
            "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {"BillingMode": "PROVISIONED", "A": 1},
                      "DeletionPolicy": "Retain"},
            "Extra": {"Type": "AWS::DynamoDB::Table"},
        },
        "Outputs": {"StreamName": {"Value": {"Ref": "Stream"}}, "ExtraName": {"Value": {"Ref": "Extra"}}},
    }
    parameters, resources, outputs = deploy.diff(OLD, new, {"ShardCount": "2"}, {"ShardCount": "4"})
    assert parameters == (("ShardCount", "2", "4"),)
    assert resources == (
        deploy.ResourceChange("Add", "Extra", "AWS::DynamoDB::Table"),
        deploy.ResourceChange("Remove", "Gone", "AWS::S3::Bucket"),
        deploy.ResourceChange("Modify", "Table", "AWS::DynamoDB::Table", ("BillingMode", "DeletionPolicy")),
    )
    assert outputs == (("Add", "ExtraName"),)
    plan = deploy.Plan("s", True, "", {}, parameters, resources, outputs)
    text = deploy.render(plan)
    assert "parameter ShardCount: 2 -> 4" in text
    assert "~ Modify Table [AWS::DynamoDB::Table] (BillingMode, DeletionPolicy)" in text
    assert "- Remove Gone [AWS::S3::Bucket]" in text


def test_parameters_keep_their_deployed_value_unless_given() -> None:
    assert deploy.effective_parameters(OLD, {"Mode": "B"}, {"ShardCount": "4", "Mode": "A"}) == {
        "ShardCount": "4", "Mode": "B"}
    assert deploy.effective_parameters(OLD, {}, {}) == {"ShardCount": "2", "Mode": "A"}
    with pytest.raises(ConfigError, match="no parameter ShardCont"):
        deploy.effective_parameters(OLD, {"ShardCont": "4"}, {})


def test_unknown_types_go_with_everything_that_refers_to_them() -> None:
    template = {
        "Resources": {
            "Cache": {"Type": "AWS::ElastiCache::ReplicationGroup"},
            "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"X": {"Fn::Sub": "${Cache.Port}"}}},
            "Uses": {"Type": "AWS::SSM::Parameter", "Properties": {"Value": {"Fn::GetAtt": ["Cache", "Port"]}}},
            "Table": {"Type": "AWS::DynamoDB::Table"},
        },
        "Outputs": {"Host": {"Value": {"Fn::GetAtt": ["Cache", "Host"]}}, "T": {"Value": {"Ref": "Table"}}},
    }
    kept, skipped = deploy.without_unknown_types(template)
    assert skipped == [("Alarm", "AWS::CloudWatch::Alarm"), ("Cache", "AWS::ElastiCache::ReplicationGroup"),
                       ("Uses", "AWS::SSM::Parameter")]
    assert set(kept["Resources"]) == {"Table"} and set(kept["Outputs"]) == {"T"}
