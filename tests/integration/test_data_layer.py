"""The data layer (cloudformation/wikitide.yaml) on the local stack: moto's CloudFormation creates it with the
production parameters, and kinesis-mock's stream gets the template's shard count."""

from __future__ import annotations

import uuid

import pytest

from wikitide import stack
from wikitide.aws import make_client
from wikitide.settings import Settings

pytestmark = pytest.mark.integration


def test_production_parameters_protect_the_tables_and_export_every_name(local_stack: object) -> None:
    settings = Settings.from_env()
    name = f"wt-{uuid.uuid4().hex[:10]}"
    cloudformation = make_client(settings, "cloudformation")
    resources = stack.deploy_local(
        cloudformation, make_client(settings, "kinesis"), name,
        parameters={"Environment": "production", "ShardCount": "3"},
    )
    dynamodb = make_client(settings, "dynamodb")
    for table in (resources.events_table, resources.counters_table,
                  resources.dead_letter_table, resources.producer_state_table):
        assert dynamodb.describe_table(TableName=table)["Table"]["DeletionProtectionEnabled"] is True, table
    summary = make_client(settings, "kinesis").describe_stream_summary(StreamName=resources.stream_name)
    assert summary["StreamDescriptionSummary"]["OpenShardCount"] == 3
    # Paged: the session's other stacks export names too (an unpaged read missed this stack's in CI).
    pages = cloudformation.get_paginator("list_exports").paginate()
    exports = {e["Name"]: e["Value"] for page in pages for e in page["Exports"]}
    assert exports[f"{name}-StreamName"] == resources.stream_name
    assert exports[f"{name}-KclApplicationName"] == f"{name}-kcl"
