"""The API against the OpenAPI document it generates, by schemathesis: over the app with in-memory ports, and its
read operations over the real Redis and DynamoDB adapters on the local stack.

For every operation, requests built from the document (valid ones, and invalid ones: wrong types, values out of
range or past their length, non-ASCII, titles MediaWiki forbids) must get no server error, a status the document
lists, a body that matches its schema, and, for a refused parameter, a 400 in JSON whose message names it.
`/v1/stream` never ends: its answers are checked on their status, headers and first bytes.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from api import create_app
from api.limits import RateLimits
from tests.conftest import RECENTCHANGE
from tests.unit.fake_feed import FakeFeedLog
from tests.unit.test_api_control import FakePlane
from tests.unit.test_api_routes import FakeEdits, FakeStats

TOKEN = "contract-test-token"
AUTHORIZED = {"Authorization": f"Bearer {TOKEN}"}
# Examples per operation and generation mode: the whole file took 31 s on the 2-core machine at load 2 (56-77 s at
# load 6-16).
EXAMPLES = 25
# The names a control route's refusal may give that are body fields, not parameters of the document.
BODY_FIELDS = ("shards", "payload")
STREAM = "/v1/stream"


def _app() -> Flask:
    stored = {"key": "enwiki:1234567890", "wiki": "enwiki", "type": "edit", "title": "Main Page", "namespace": 0,
              "dt": "2026-12-02T12:00:00Z", "user": "Example", "editor": "user", "bot": False, "byte_delta": 12,
              "rev_new": 1234567890, "page_url": "https://en.wikipedia.org/wiki/Main_Page", "comment": "",
              "synthetic": False}
    # The document's examples name this change, so that its answers are checked as well as the refusals.
    edits = FakeEdits(docs={("enwiki", 1234567890): stored}, latest={("enwiki", "Main Page"): stored})
    edits.changes[("enwiki", "Main Page")] = [stored]
    stats = FakeStats()
    stats.feed[None] = [{**stored, "ms": 1_764_676_800_000}]  # the fake's feed order
    # No rate limit: a 429 is documented everywhere, and would hide what the generated requests should meet.
    return create_app(stats=stats, edits=edits, health_checks={}, feed=FakeFeedLog(),  # type: ignore[arg-type]
                      control_plane=FakePlane(), control_token=TOKEN,  # type: ignore[arg-type]
                      rate_limits=RateLimits(queries="off", stream="off", control="off"))


APP = _app()
SCHEMA = schemathesis.openapi.from_wsgi("/openapi.json", APP)
# Unknown query parameters are ignored by design (`api.schemas.Parameters`), as by any web server.
SCHEMA.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=EXAMPLES,
                                allow_extra_parameters=False)


def _parameter_names(case: Any) -> list[str]:
    return [parameter.name for parameter in case.operation.iter_parameters()]


@schemathesis.check
def refusals_are_json_naming_the_parameter(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code < 400:
        return None
    assert response.headers.get("content-type", [""])[0].startswith("application/json"), response.text[:200]
    message = response.json()["error"]
    assert "Traceback" not in message and "File \"" not in message, message
    if response.status_code == 400:
        names = [*_parameter_names(case), *BODY_FIELDS]
        assert any(name in message for name in names), f"{message!r} names none of {names}"
    return True


@SCHEMA.exclude(path=STREAM).parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_its_contract(case: Any) -> None:
    # The control token where the case sends one (a case that leaves it out must be refused).
    case.call_and_validate(headers=AUTHORIZED if "Authorization" in (case.headers or {}) else None)


@given(case=SCHEMA[STREAM]["GET"].as_strategy(generation_mode=GenerationMode.POSITIVE)
       | SCHEMA[STREAM]["GET"].as_strategy(generation_mode=GenerationMode.NEGATIVE))
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_stream_opens_or_refuses_naming_the_parameter(case: Any) -> None:
    kwargs = case.as_transport_kwargs()
    response = APP.test_client().open(kwargs["path"], method="GET", headers=kwargs["headers"],
                                      query_string=kwargs.get("query_string"), buffered=False)
    try:
        if response.status_code == 200:
            assert response.mimetype == "text/event-stream"
            assert next(iter(response.response)).startswith(b"retry: ")
        else:
            assert response.status_code == 400, response.status_code
            assert response.is_json
            message = response.get_json()["error"]
            assert any(name in message for name in _parameter_names(case)), message
    finally:
        response.close()


@pytest.mark.parametrize("path", ["/nowhere", "/v1/", "/v1/stats/extra", "/v1/pages//Main_Page", "/v2/stats"])
def test_unknown_routes_are_json_404(path: str) -> None:
    response = APP.test_client().get(path)
    assert response.status_code == 404
    assert response.is_json and "Traceback" not in response.get_json()["error"]


def test_docs_page_loads_swagger_ui_from_this_server() -> None:
    client = APP.test_client()
    page = client.get("/docs").get_data(as_text=True)
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/static/docs.js"):
        assert asset in page
        answer = client.get(asset)
        assert answer.status_code == 200 and len(answer.get_data()) > 100
    assert "//" not in "".join(line for line in page.splitlines() if "src=" in line or "href=" in line)


# The same contract over the real adapters: the app as `make up` wires it (Redis first, DynamoDB behind it), on the
# local stack's redis-server and moto, holding recorded changes the real processor stored. The fakes above cannot
# show that what Redis and DynamoDB return fits the answer schemas; this can. Read operations only: the control
# routes would reshard the stream or pause producers, and are checked above against their port.
STACK_EXAMPLES = 10
RECORDED = RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson"


@pytest.fixture(scope="module")
def stack_schema(local_stack: Any) -> Any:
    import uuid

    import boto3
    import redis

    from kcl_app.bootstrap import build_stores
    from kcl_app.handler import StreamRecord, process_batch
    from wikitide import stack
    from wikitide.aws import make_client
    from wikitide.settings import Settings

    name = f"wt-{uuid.uuid4().hex[:10]}"
    settings = Settings.from_env()
    resources = stack.deploy_local(make_client(settings, "cloudformation"), make_client(settings, "kinesis"), name)
    redis_url = local_stack.env["REDIS_URL"].rsplit("/", 1)[0] + "/5"  # a database of its own: others flush db 0
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    stores, rebuilder = build_stores(boto3.client("dynamodb"), client, resources)
    lines = [line.encode() for line in RECORDED.read_text(encoding="utf-8").splitlines() if line.strip()][:400]
    process_batch([StreamRecord(p, "shardId-000000000000", 1000 + i, 1_630_070_400_000 + i)
                   for i, p in enumerate(lines)], stores)
    rebuilder.rebuild()
    stack_settings = Settings.from_env({**local_stack.env, "WIKITIDE_STACK": name, "REDIS_URL": redis_url})
    app = create_app(stack_settings, answer_cache_seconds=0,
                     rate_limits=RateLimits(queries="off", stream="off", control="off"))
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    schema.config.generation.update(modes=[GenerationMode.POSITIVE], max_examples=STACK_EXAMPLES)
    return schema


# The read operations, from the same document (schemathesis' lazy fixture schemas need pytest < 9).
READ_PATHS = sorted(path for path, item in APP.spec["paths"].items()  # type: ignore[union-attr]
                    if path.startswith("/v1/") and "get" in item and not path.startswith(("/v1/control", STREAM)))


@pytest.mark.integration
@pytest.mark.parametrize("path", READ_PATHS)
def test_every_read_keeps_its_contract_over_redis_and_dynamodb(stack_schema: Any, path: str) -> None:
    @given(case=stack_schema[path]["GET"].as_strategy(generation_mode=GenerationMode.POSITIVE))
    @settings(max_examples=STACK_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def keeps_its_contract(case: Any) -> None:
        case.call_and_validate()

    keeps_its_contract()
