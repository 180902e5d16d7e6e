"""`DynamoEdits` and `/v1/edits/<wiki>/<rev_id>` against moto's DynamoDB server on a free port."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from api import create_app
from api.dynamo_edits import DynamoEdits
from api.recent import RecentPage
from wikitide.errors import DependencyUnavailable
from wikitide.events import revision_key

pytestmark = pytest.mark.integration


class NoStats:
    def latest_minute(self) -> int | None:
        return None

    def minute_counts(self, minutes: Any, wiki: str | None) -> list[Any]:
        return []

    def page_scores(self, minutes: Any, wiki: str | None, limit: int) -> list[tuple[str, float]]:
        return []

    def recent(self, matches: Any, after: Any, limit: int) -> RecentPage:
        return RecentPage([], None)


@pytest.fixture(scope="module")
def dynamodb_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def dynamodb(dynamodb_endpoint: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=dynamodb_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def table(dynamodb: Any) -> str:
    name = f"events-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def put_event(dynamodb: Any, table: str, doc: dict[str, Any]) -> None:
    dynamodb.put_item(
        TableName=table,
        Item={
            "pk": {"S": revision_key(doc["wiki"], doc["rev_new"])},
            "doc": {"S": json.dumps(doc)},
            "wiki": {"S": doc["wiki"]},
            "type": {"S": doc["type"]},
            "dt": {"S": doc["dt"]},
            "title": {"S": doc["title"]},
        },
    )


DOC = {
    "key": "enwiki#rev#42",
    "wiki": "enwiki",
    "type": "edit",
    "title": "Tide",
    "dt": "2024-05-26T15:40:30Z",
    "rev_new": 42,
    "byte_delta": -3,
    "synthetic": False,
}


def test_a_stored_edit_is_found_by_wiki_and_revision(dynamodb: Any, table: str) -> None:
    put_event(dynamodb, table, DOC)
    put_event(dynamodb, table, DOC | {"wiki": "dewiki", "key": "dewiki#rev#42", "title": "Gezeiten"})

    edits = DynamoEdits(dynamodb, table)

    assert edits.get_edit("enwiki", 42) == DOC
    assert edits.get_edit("dewiki", 42)["title"] == "Gezeiten"  # type: ignore[index]
    assert edits.get_edit("enwiki", 43) is None
    assert edits.get_edit("frwiki", 42) is None


def test_a_missing_table_is_dependency_unavailable(dynamodb: Any) -> None:
    with pytest.raises(DependencyUnavailable, match="dynamodb"):
        DynamoEdits(dynamodb, "no-such-table").get_edit("enwiki", 1)


def test_the_edit_route_reads_dynamodb(dynamodb: Any, table: str) -> None:
    put_event(dynamodb, table, DOC)
    api = create_app(stats=NoStats(), edits=DynamoEdits(dynamodb, table), health_checks={}).test_client()

    found = api.get("/v1/edits/enwiki/42")
    missing = api.get("/v1/edits/enwiki/41")
    broken = create_app(stats=NoStats(), edits=DynamoEdits(dynamodb, "gone"), health_checks={})

    assert (found.status_code, found.get_json()) == (200, DOC)
    assert missing.status_code == 404
    assert broken.test_client().get("/v1/edits/enwiki/42").status_code == 503
