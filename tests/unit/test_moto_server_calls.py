"""The local stack's moto server counts the requests of each action it takes (what the benchmarks divide by the
events a run processed)."""

from __future__ import annotations

import json

from werkzeug.test import Client

from wikitide.localstack.moto_server import CALLS_PATH, RememberingDispatcher

DYNAMODB_HOST = "dynamodb.us-east-1.amazonaws.com"


def _dynamodb_call(client: Client, action: str) -> int:
    response = client.post(
        "/", data=b"{}", headers={
            "Host": DYNAMODB_HOST, "X-Amz-Target": f"DynamoDB_20120810.{action}",
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": "AWS4-HMAC-SHA256 Credential=test/20261203/us-east-1/dynamodb/aws4_request, "
                             "SignedHeaders=host, Signature=0",
        })
    return response.status_code


def test_each_action_is_counted_and_the_counts_are_served_as_json() -> None:
    client = Client(RememberingDispatcher())
    assert json.loads(client.get(CALLS_PATH).get_data()) == {}
    assert _dynamodb_call(client, "ListTables") == 200
    assert _dynamodb_call(client, "ListTables") == 200
    _dynamodb_call(client, "DescribeLimits")
    counts = json.loads(client.get(CALLS_PATH).get_data())
    assert counts == {"DynamoDB_20120810.ListTables": 2, "DynamoDB_20120810.DescribeLimits": 1}


def test_a_request_without_an_action_is_served_and_not_counted() -> None:
    client = Client(RememberingDispatcher())
    client.get("/moto-api/", headers={"Host": "localhost"})
    assert json.loads(client.get(CALLS_PATH).get_data()) == {}


def test_a_preloaded_service_is_the_app_its_requests_are_served_by() -> None:
    dispatcher = RememberingDispatcher()
    dispatcher.preload(["dynamodb"])
    preloaded = dispatcher.app_instances["dynamodb"]
    assert _dynamodb_call(Client(dispatcher), "ListTables") == 200
    assert dispatcher.app_instances["dynamodb"] is preloaded
