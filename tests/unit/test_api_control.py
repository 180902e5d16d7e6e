"""`/v1/control/*` over a fake control plane: the token, the log line of every call, the parameters."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask.testing import FlaskClient

from api import create_app
from api.control_plane import Conflict, NotFound, decode_cursor, encode_cursor
from tests.unit.test_api_routes import FakeEdits, FakeStats

TOKEN = "s3cret-token"


class FakePlane:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def status(self) -> dict[str, Any]:
        self.calls.append(("status",))
        return {"stream": {"name": "s"}, "producer": {"paused": False}, "dead_letters": {"by_reason": {}}}

    def set_paused(self, paused: bool, by: str) -> dict[str, Any]:
        self.calls.append(("paused", paused, by))
        return {"paused": paused}

    def scale(self, shards: int) -> dict[str, Any]:
        self.calls.append(("scale", shards))
        return {"from": 2, "to": shards}

    def dead_letters(self, reason: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
        self.calls.append(("list", reason, limit, cursor))
        return {"items": [], "next": None}

    def replay(self, letter_id: str, fixed: bytes | None, by: str) -> dict[str, Any]:
        self.calls.append(("replay", letter_id, fixed))
        if letter_id.endswith("#9"):
            raise Conflict("dead letter x was already replayed")
        if letter_id.endswith("#8"):
            raise NotFound("no dead letter x")
        return {"id": letter_id}


def client(plane: FakePlane, token: str | None = TOKEN) -> FlaskClient:
    app = create_app(stats=FakeStats(), edits=FakeEdits(), health_checks={}, control_plane=plane,  # type: ignore[arg-type]
                     control_token=token)
    return app.test_client()


AUTH = {"Authorization": f"Bearer {TOKEN}"}
ENDPOINTS = [("get", "/v1/control/status"), ("post", "/v1/control/producer/pause"),
             ("post", "/v1/control/producer/resume"), ("post", "/v1/control/stream/scale"),
             ("get", "/v1/control/dead-letters"), ("post", "/v1/control/dead-letters/shardId-000000000000%231/replay")]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_control_endpoint_needs_the_token(method: str, path: str, caplog: pytest.LogCaptureFixture) -> None:
    plane = FakePlane()
    caplog.set_level(logging.INFO, logger="api.control")
    without = getattr(client(plane), method)(path)
    assert without.status_code == 401
    assert without.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = getattr(client(plane), method)(path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert wrong.get_json()["error"] == "wrong control token"
    assert plane.calls == []
    off = getattr(client(plane, token=None), method)(path, headers=AUTH)
    assert off.status_code == 403
    lines = [r.getMessage() for r in caplog.records if r.name == "api.control"]
    assert len(lines) == 3
    assert all(path.replace("%23", "#") in line or path in line for line in lines)
    assert [line.rsplit(" ", 1)[1] for line in lines] == ["401", "403", "403"]
    assert all(TOKEN not in line and "nope" not in line for line in lines)


def test_calls_with_the_token_reach_the_plane_and_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    plane = FakePlane()
    caplog.set_level(logging.INFO, logger="api.control")
    http = client(plane)
    assert http.get("/v1/control/status", headers=AUTH).status_code == 200
    assert http.post("/v1/control/producer/pause", headers=AUTH).get_json() == {"producer": {"paused": True}}
    assert http.post("/v1/control/producer/resume", headers=AUTH).status_code == 200
    assert http.post("/v1/control/stream/scale", headers=AUTH, json={"shards": 4}).status_code == 202
    cursor = encode_cursor("shardId-000000000000#5")
    assert http.get("/v1/control/dead-letters", query_string={"reason": "not_json", "limit": "5", "cursor": cursor},
                    headers=AUTH).status_code == 200
    fixed = http.post("/v1/control/dead-letters/shardId-000000000000%2312/replay", headers=AUTH,
                      json={"payload": {"wiki": "enwiki"}})
    assert fixed.status_code == 202
    assert plane.calls == [
        ("status",), ("paused", True, "127.0.0.1"), ("paused", False, "127.0.0.1"), ("scale", 4),
        ("list", "not_json", 5, cursor), ("replay", "shardId-000000000000#12", b'{"wiki": "enwiki"}'),
    ]
    lines = [r.getMessage() for r in caplog.records if r.name == "api.control"]
    assert lines[0] == "control GET /v1/control/status from 127.0.0.1: 200"
    assert len(lines) == 6


@pytest.mark.parametrize("body", [None, {}, {"shards": "4"}, {"shards": 0}, {"shards": 1025}, {"shards": 2.0},
                                  {"shards": True}, [4]])
def test_scale_needs_a_shard_count(body: Any) -> None:
    plane = FakePlane()
    response = client(plane).post("/v1/control/stream/scale", headers=AUTH, json=body)
    assert response.status_code == 400
    assert "shards" in response.get_json()["error"]
    assert plane.calls == []


@pytest.mark.parametrize(("query", "name"), [("reason=bogus", "reason"), ("limit=0", "limit"), ("limit=201", "limit"),
                                           ("cursor=abc", "cursor")])
def test_dead_letter_listing_refuses_bad_parameters(query: str, name: str) -> None:
    response = client(FakePlane()).get(f"/v1/control/dead-letters?{query}", headers=AUTH)
    assert response.status_code == 400
    assert name in response.get_json()["error"]


def test_replay_answers_conflict_missing_and_bad_ids_in_json() -> None:
    http = client(FakePlane())
    assert http.post("/v1/control/dead-letters/shardId-1%239/replay", headers=AUTH).status_code == 409
    assert http.post("/v1/control/dead-letters/shardId-1%238/replay", headers=AUTH).status_code == 404
    bad = http.post("/v1/control/dead-letters/nothing/replay", headers=AUTH)
    assert bad.status_code == 400
    assert "id" in bad.get_json()["error"]
    not_json = http.post("/v1/control/dead-letters/shardId-1%231/replay", headers=AUTH, data="x",
                         content_type="application/json")
    assert not_json.status_code == 400
    wrong_shape = http.post("/v1/control/dead-letters/shardId-1%231/replay", headers=AUTH, json={"payload": 5})
    assert wrong_shape.status_code == 400


def test_cursors_round_trip_and_refuse_garbage() -> None:
    assert decode_cursor(encode_cursor("shardId-000000000001#123")) == "shardId-000000000001#123"
    for garbage in ("!!", "aGVsbG8", "x" * 500, "", "shardId-1#", "#12", "shardId-1#12x"):
        with pytest.raises(Exception, match="cursor"):
            decode_cursor(garbage)


def test_a_replay_body_past_the_limit_is_refused_unread() -> None:
    response = client(FakePlane()).post("/v1/control/dead-letters/shardId-1%231/replay", headers=AUTH,
                                        data=b"{" + b" " * (3 * 1024 * 1024) + b"}", content_type="application/json")
    assert response.status_code == 413
    assert response.is_json
