"""The operator's control surface behind `/v1/control/*`: the stream and its workers, the producer's pause flag and
positions, resharding, and the dead letters with their replay. An adapter over the clients it is given (Kinesis,
DynamoDB, Redis); the routes (`api.control`) check the token and translate its errors.

What `wikitide workers` and `wikitide producer-status` show comes from the same shared code
(`wikitide.fleet_reader`, `wikitide.producer_control`). A replay puts the dead letter's payload (or a fixed one)
back into the stream as a new record, once: the dead letter is marked `replayed_at` by a conditional update before
the put, so a second replay is refused, and the processor counts the change once whatever happens (its claim).
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import asdict
from typing import Any

import redis
from botocore.exceptions import BotoCoreError, ClientError

from api.errors import ApiError, InvalidParameter
from api.params import decode_cursor
from wikitide import envelope, keys
from wikitide.errors import ConfigError, DependencyUnavailable, InvalidChange, WikitideError
from wikitide.events import parse_change
from wikitide.fleet_reader import read_shards, read_status
from wikitide.fleet_status import build_rows, summary
from wikitide.producer_control import ProducerControl

MAX_SHARDS = 1024
KINESIS_RECORD_BYTES = 1024 * 1024
LIST_PAGE = 200
SCAN_CALLS = 20  # a filtered scan reads at most this many pages for one answer, then hands back a cursor
PREVIEW_CHARS = 300


class Conflict(ApiError):
    """The request cannot be done in the current state (answered 409)."""


class NotFound(ApiError):
    """No such dead letter (answered 404)."""


class ControlPlane:
    def __init__(self, *, kinesis: Any, dynamodb: Any, redis_client: Any, stream: str, application: str,
                 dead_letter_table: str, producer: ProducerControl) -> None:
        self._kinesis = kinesis
        self._dynamodb = dynamodb
        self._redis = redis_client
        self._stream = stream
        self._application = application
        self._dead_letters = dead_letter_table
        self._producer = producer

    def status(self) -> dict[str, Any]:
        """Each part on its own: one that cannot be read says why and the others still answer."""
        return {"stream": _part(self._stream_status), "producer": _part(self._producer_status),
                "dead_letters": _part(self._dead_letter_counts)}

    def _stream_status(self) -> dict[str, Any]:
        described = self._aws(lambda: self._kinesis.describe_stream_summary(StreamName=self._stream),
                              "Kinesis")["StreamDescriptionSummary"]
        answer: dict[str, Any] = {"name": self._stream, "status": described["StreamStatus"],
                                  "open_shards": described["OpenShardCount"]}
        try:
            rows = read_status(self._kinesis, self._dynamodb, self._redis, self._stream, self._application)
        except ConfigError as exc:  # no lease table: no worker has started yet
            rows = build_rows(read_shards(self._kinesis, self._stream), [], {}, now_ms=int(time.time() * 1000))
            answer["workers"] = str(exc)
        return {**answer, "summary": summary(rows), "shards": [asdict(row) for row in rows]}

    def _producer_status(self) -> dict[str, Any]:
        return {**self._producer.state(), "positions": self._producer.positions()}

    def _dead_letter_counts(self) -> dict[str, Any]:
        try:
            counts = self._redis.hgetall(keys.REJECTED)
        except (redis.RedisError, OSError) as exc:
            raise DependencyUnavailable("the dead-letter counts could not be read (Redis)") from exc
        by_reason = {_text(k): int(v) for k, v in counts.items()}
        return {"by_reason": dict(sorted(by_reason.items())), "total": sum(by_reason.values())}

    def set_paused(self, paused: bool, by: str) -> dict[str, Any]:
        self._producer.set_paused(paused, by)
        return self._producer.state()

    def scale(self, shards: int) -> dict[str, Any]:
        described = self._aws(lambda: self._kinesis.describe_stream_summary(StreamName=self._stream),
                              "Kinesis")["StreamDescriptionSummary"]
        current = described["OpenShardCount"]
        if current == shards:
            return {"stream": self._stream, "from": current, "to": shards, "status": described["StreamStatus"]}
        self._aws(lambda: self._kinesis.update_shard_count(
            StreamName=self._stream, TargetShardCount=shards, ScalingType="UNIFORM_SCALING"), "Kinesis")
        return {"stream": self._stream, "from": current, "to": shards, "status": "UPDATING"}

    def dead_letters(self, reason: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
        """Up to `limit` dead letters (with `reason`), in the table's order, and the cursor of the rest (`None` at
        the end). A page may hold fewer than `limit` with a cursor: the scan reads at most `SCAN_CALLS` pages."""
        kwargs: dict[str, Any] = {"TableName": self._dead_letters, "Limit": LIST_PAGE}
        if reason is not None:
            kwargs.update(FilterExpression="#r = :r", ExpressionAttributeNames={"#r": "reason"},
                          ExpressionAttributeValues={":r": {"S": reason}})
        next_key = decode_cursor(cursor)
        items: list[dict[str, Any]] = []
        for _ in range(SCAN_CALLS):
            if next_key is not None:
                kwargs["ExclusiveStartKey"] = {"pk": {"S": next_key}}
            page = self._aws(lambda: self._dynamodb.scan(**kwargs), "DynamoDB")
            found = page.get("Items", [])
            room = limit - len(items)
            items.extend(letter_summary(item) for item in found[:room])
            if len(found) > room:  # full within this page: the next answer starts after the last one listed
                next_key = found[room - 1]["pk"]["S"]
                break
            last = page.get("LastEvaluatedKey")
            next_key = last["pk"]["S"] if last else None
            if next_key is None or len(items) == limit:
                break
        return {"items": items, "next": encode_cursor(next_key) if next_key else None}

    def replay(self, letter_id: str, fixed: bytes | None, by: str) -> dict[str, Any]:
        item = self._aws(lambda: self._dynamodb.get_item(
            TableName=self._dead_letters, Key={"pk": {"S": letter_id}}, ConsistentRead=True), "DynamoDB").get("Item")
        if item is None:
            raise NotFound(f"no dead letter {letter_id}")
        payload = fixed if fixed is not None else stored_payload(item)
        now_ms = int(time.time() * 1000)
        if len(envelope.wrap(payload, None, now_ms)) > KINESIS_RECORD_BYTES:
            raise InvalidParameter(f"payload is larger than a Kinesis record ({KINESIS_RECORD_BYTES} bytes)")
        try:
            parse_change(payload, now_ms)
        except InvalidChange as exc:
            raise InvalidParameter(f"payload is still refused ({exc.reason}: {exc.detail}); send the fixed record"
                                   f" as payload") from exc
        try:
            self._dynamodb.update_item(
                TableName=self._dead_letters, Key={"pk": {"S": letter_id}},
                UpdateExpression="SET replayed_at = :now, replayed_by = :by",
                ConditionExpression="attribute_not_exists(replayed_at)",
                ExpressionAttributeValues={":now": {"N": str(now_ms)}, ":by": {"S": by[:200] or "-"}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise Conflict(f"dead letter {letter_id} was already replayed") from exc
            raise DependencyUnavailable("the dead letter could not be marked (DynamoDB)") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable("the dead letter could not be marked (DynamoDB)") from exc
        try:
            put = self._kinesis.put_record(StreamName=self._stream, Data=envelope.wrap(payload, None, now_ms),
                                           PartitionKey=letter_id[:256])
        except (ClientError, BotoCoreError) as exc:
            # Not in the stream: the mark goes, so that the replay can be asked again.
            self._aws(lambda: self._dynamodb.update_item(
                TableName=self._dead_letters, Key={"pk": {"S": letter_id}},
                UpdateExpression="REMOVE replayed_at, replayed_by"), "DynamoDB")
            raise DependencyUnavailable("the record could not be put into the stream (Kinesis)") from exc
        return {"id": letter_id, "replayed_at": now_ms, "shard_id": put["ShardId"],
                "sequence_number": put["SequenceNumber"], "fixed": fixed is not None}

    @staticmethod
    def _aws(operation: Any, service: str) -> Any:
        try:
            return operation()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("ValidationException", "InvalidArgumentException"):
                raise InvalidParameter(f"{service} refused the request: {exc.response['Error'].get('Message', code)}"
                                       ) from exc
            if code in ("ResourceInUseException", "LimitExceededException"):
                raise Conflict(f"{service}: {exc.response['Error'].get('Message', code)}") from exc
            raise DependencyUnavailable(f"{service} failed ({code})") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable(f"{service} could not be reached") from exc


def _part(read: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = read()
        return result
    except (WikitideError, ConfigError) as exc:
        return {"error": str(exc)[:300]}


def letter_summary(item: dict[str, Any]) -> dict[str, Any]:
    plain: dict[str, Any] = {}
    for name, value in item.items():
        if name in ("payload", "payload_base64"):
            continue
        plain[name] = int(value["N"]) if "N" in value else value.get("S", value.get("BOOL"))
    text = item.get("payload", {}).get("S")
    plain["payload_preview"] = text[:PREVIEW_CHARS] if text is not None else None
    plain["id"] = plain.pop("pk")
    return plain


def stored_payload(item: dict[str, Any]) -> bytes:
    if item.get("payload_truncated", {}).get("BOOL"):
        raise Conflict("the stored payload was cut to fit the table: send the fixed record as payload")
    if "payload" in item:
        return str(item["payload"]["S"]).encode("utf-8")
    if "payload_base64" in item:
        return base64.b64decode(item["payload_base64"]["S"])
    raise Conflict("the dead letter has no payload: send the fixed record as payload")


def encode_cursor(pk: str) -> str:
    """The `next` of a page: the id of the last dead letter it listed (the next page starts after it)."""
    return pk


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def parse_fixed_payload(body: Any) -> bytes | None:
    """The `payload` of a replay's JSON body (an object, or its JSON text), `None` when absent."""
    if body is None:
        return None
    if not isinstance(body, dict) or set(body) - {"payload"}:
        raise InvalidParameter("payload: the body must be a JSON object with at most the field `payload`")
    if "payload" not in body:
        return None
    payload = body["payload"]
    if isinstance(payload, dict):
        return json.dumps(payload, ensure_ascii=False).encode("utf-8")
    if isinstance(payload, str):
        return payload.encode("utf-8")
    raise InvalidParameter("payload must be the fixed record: a JSON object or its JSON text")
