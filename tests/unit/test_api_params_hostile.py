"""Every API parameter against generated input, read from the OpenAPI document the API serves.

Two properties per operation:
- whatever a client sends (control characters, huge strings, numbers past any limit, non-ASCII digits), the
  answer is JSON with a 200, 400 or 404, never a server error, and a 400 names the parameter it refuses;
- a value the document calls valid is never refused with a 400: the document and the code agree.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import create_app
from api.limits import RateLimits
from tests.unit.fake_feed import FakeFeedLog
from tests.unit.test_api_control import FakePlane
from tests.unit.test_api_routes import FakeEdits, FakeStats

DOCUMENT = json.loads(create_app(stats=FakeStats(), edits=FakeEdits(), health_checks={})  # type: ignore[arg-type]
                      .test_client().get("/openapi.json").get_data())
OPERATIONS = [
    (path, operation["parameters"])
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if method == "get" and operation.get("parameters")
]
# Operations behind the control token: asked with it, as an operator's client would.
SECURED = {path for path, item in DOCUMENT["paths"].items() for operation in item.values() if operation.get("security")}
TOKEN = "hostile-test-token"

HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=3000),
    st.sampled_from(["", " ", "0", "-1", "1e3", "²", "١٢", "9" * 40, "1" * 19, "%00", "../..", "\x00", "a\nb"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)

PROFILE = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    """One app for every example: the requests are all GETs, which change nothing the fakes hold, and building the
    app (its OpenAPI document included) per example was most of this file's time. Its rate limits are out of
    reach, as a fresh app's were: they are tested on their own (`test_api_limits.py`)."""
    stats = FakeStats()
    edits = FakeEdits(docs={("enwiki", 5): {"wiki": "enwiki", "rev_new": 5}})
    unlimited = RateLimits(queries="1000000/second", stream="1000000/second", control="1000000/second")
    return create_app(stats=stats, edits=edits, health_checks={}, feed=FakeFeedLog(), control_plane=FakePlane(),
                      control_token=TOKEN, rate_limits=unlimited).test_client()  # type: ignore[arg-type]


def _valid_value(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    if "enum" in schema:
        return st.sampled_from([str(value) for value in schema["enum"]])
    if schema.get("type") == "integer":
        # No maximum in the document means any integer a JSON client can send exactly (2**53 - 1).
        low, high = schema.get("minimum", -(2**53) + 1), schema.get("maximum", 2**53 - 1)
        return st.one_of(st.integers(min_value=low, max_value=high), st.sampled_from([low, high])).map(str)
    shortest, longest = schema.get("minLength", 0), schema.get("maxLength", 200)
    pattern = _python_pattern(schema.get("pattern", ""))
    any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=longest)
    matching = st.from_regex(pattern) if pattern else any_text
    edges = st.sampled_from([" ", "\t", " x", "x", "x" * longest, "é" * longest, "x" * (longest + 1)])
    return st.one_of(matching, edges).filter(
        lambda value: shortest <= len(value) <= longest and re.search(pattern, value) is not None
    )


def _python_pattern(pattern: str) -> str:
    """A JSON Schema (ECMA-262) pattern for Python's `re.search`: both match anywhere unless anchored, but
    ECMA's `$` is the end of the text, where Python's also matches before a final line break."""
    return pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern


def _request(client: FlaskClient, path: str, parameters: list[dict[str, Any]], values: dict[str, str]) -> Any:
    template = path
    query = {}
    for parameter in parameters:
        name = parameter["name"]
        if name not in values:
            continue
        if parameter["in"] == "path":
            path = path.replace("{" + name + "}", quote(values[name], safe=""))
        else:
            query[name] = values[name]
    headers = {"Authorization": f"Bearer {TOKEN}"} if template in SECURED else {}
    return client.get(path, query_string=query, headers=headers, buffered=False)


def _is_event_stream(response: Any) -> bool:
    """`/v1/stream` answers an endless event stream, not JSON: it is closed unread."""
    if response.mimetype != "text/event-stream":
        return False
    response.close()
    return True


def _values(parameters: list[dict[str, Any]], hostile: bool) -> st.SearchStrategy[dict[str, str]]:
    fields: dict[str, st.SearchStrategy[str]] = {}
    for parameter in parameters:
        valid = _valid_value(parameter["schema"])
        fields[parameter["name"]] = st.one_of(valid, HOSTILE_TEXT) if hostile else valid
    required = {p["name"] for p in parameters if p.get("required") or p["in"] == "path"}
    optional = [name for name in fields if name not in required]
    return st.fixed_dictionaries({name: fields[name] for name in required}).flatmap(
        lambda chosen: st.lists(st.sampled_from(optional), unique=True).flatmap(
            lambda names: st.fixed_dictionaries({name: fields[name] for name in names}).map(
                lambda extra: {**chosen, **extra}
            )
        )
        if optional
        else st.just(chosen)
    )


def test_the_document_describes_parameters_of_every_query() -> None:
    assert {path for path, _ in OPERATIONS} >= {
        "/v1/stats", "/v1/pages/top", "/v1/pages/latest", "/v1/edits/recent", "/v1/edits/{wiki}/{rev_id}",
        "/v1/wikis", "/v1/trending", "/v1/pages/{wiki}/{title}", "/v1/stream",
    }


@pytest.mark.parametrize(("path", "parameters"), OPERATIONS, ids=[path for path, _ in OPERATIONS])
@PROFILE
@given(data=st.data())
def test_any_parameter_value_gets_json_and_never_a_server_error(
    client: FlaskClient, path: str, parameters: list[dict[str, Any]], data: st.DataObject
) -> None:
    values = data.draw(_values(parameters, hostile=True), label="values")
    response = _request(client, path, parameters, values)
    assert response.status_code in (200, 400, 404), (path, values, response.status_code, response.data[:300])
    assert response.is_json or (response.status_code == 200 and _is_event_stream(response)), response.data[:300]
    if response.status_code == 400:
        message = response.get_json()["error"]
        assert any(p["name"] in message for p in parameters), (path, values, message)


@pytest.mark.parametrize(("path", "parameters"), OPERATIONS, ids=[path for path, _ in OPERATIONS])
@PROFILE
@given(data=st.data())
def test_a_value_the_document_calls_valid_is_never_refused(
    client: FlaskClient, path: str, parameters: list[dict[str, Any]], data: st.DataObject
) -> None:
    values = data.draw(_values(parameters, hostile=False), label="values")
    response = _request(client, path, parameters, values)
    assert response.status_code in (200, 404), (path, values, response.status_code, response.get_json())
    _is_event_stream(response)
