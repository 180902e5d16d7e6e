"""DynamoDB adapters for the events and dead-letter tables.

Every write is idempotent. An event is claimed by the first stream position that stores it (read in batches,
written in batches: see `DynamoEventStore.claim` for why no condition is needed); its item also indexes it
by minute and by page (`wikitide.event_index`), which is how the API finds recent changes and a page's latest.
A dead letter is an overwrite keyed by the record's stream position.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from kcl_app.handler import DeadLetter, ProcessedChange, position_ordinal, recent_score
from kcl_app.ledger import PageEdit
from wikitide import aws, event_index, keys, retry
from wikitide.events import is_revision_key

logger = logging.getLogger(__name__)

T = TypeVar("T")
BATCH_LIMIT = 25  # BatchWriteItem's own limit
GET_LIMIT = 100  # BatchGetItem's own limit
# An item holds 400 KB in all: a payload keeps at most 300,000 bytes of text, or of base64 (4 characters for 3
# bytes) when it is not UTF-8, beside a detail of at most 2,000 characters (8,000 bytes) and a few numbers.
DEAD_LETTER_PAYLOAD_LIMIT = 300_000
DETAIL_LIMIT = 2000
DEAD_LETTER_TTL_SECONDS = 14 * 86400
POLICY = retry.PROCESSOR_DYNAMODB


def is_condition_failure(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


class WritePool:
    """Runs independent single-item writes side by side: DynamoDB latency, not throughput, bounds a batch."""

    def __init__(self, workers: int = 8) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dynamodb")

    def map(self, call: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
        """Results in `items`' order. After the first failure no further write starts (a worker that is free
        skips the rest of the queue) and that failure is raised: a batch that will be redelivered must not keep
        a hung store busy, nor its process alive, for every item left in the queue."""
        if len(items) <= 1:
            return [call(item) for item in items]
        failed = threading.Event()

        def guarded(item: Any) -> T:
            if failed.is_set():
                raise _Skipped
            try:
                return call(item)
            except BaseException:
                failed.set()
                raise

        futures = [self._executor.submit(guarded, item) for item in items]
        wait(futures, return_when=FIRST_EXCEPTION)
        if failed.is_set():
            wait(futures)
            raise next(e for f in futures if (e := f.exception()) is not None and not isinstance(e, _Skipped))
        return [future.result() for future in futures]


class _Skipped(Exception):
    """A write not started because another write of the same batch had failed."""


class DynamoEventStore:
    def __init__(
        self,
        client: Any,
        events_table: str,
        *,
        pool: WritePool | None = None,
        attempts: int | None = None,
        fast_retries: bool = False,
    ) -> None:
        self._client = client
        self._events = events_table
        self._pool = pool or WritePool()
        self._attempts = attempts
        self._fast = fast_retries

    def claim(self, changes: Sequence[ProcessedChange]) -> list[ProcessedChange]:
        """The changes whose record holds its key: a key no record holds yet is written (held by this record),
        a key held by this record's own position is a redelivery (held), any other holder makes it a duplicate.

        Read with BatchGetItem (100 keys a call) and written with BatchWriteItem (25 a call), without a condition:
        one call per 25-100 records instead of a conditional PutItem each. Safe because only one record
        position can ever be claiming a key at a time. Every copy of an event has the same page, so the same
        partition key: all of them are on one shard, or on a parent and its children, which the KCL processes
        one after the other (children after their parents' SHARD_END checkpoint). A shard's records are
        claimed in sequence order, and a claim is written before the batch's checkpoint, so whoever claims a
        later copy reads the earlier one's holder. The only writers that overlap are two processors of the
        same shard (a zombie and the lease's new owner, or a redelivery): they write the same position and the
        same item, so either order leaves the same holder. (`tests/integration/test_stores.py` runs that race.)
        `prepare` already keeps one change per key within a batch."""
        holders = self._holders([change.key for change in changes])
        held = [c for c in changes if holders.get(c.key, c.record.position) == c.record.position]
        new = [change for change in held if change.key not in holders]
        chunks = [new[start : start + BATCH_LIMIT] for start in range(0, len(new), BATCH_LIMIT)]
        self._pool.map(self._write_claims, chunks)
        return held

    def _holders(self, keys: Sequence[str]) -> dict[str, str]:
        """The position holding each of these keys, for the keys some record holds."""
        found: dict[str, str] = {}
        for start in range(0, len(keys), GET_LIMIT):
            pending: dict[str, Any] = {self._events: {
                "Keys": [{"pk": {"S": key}} for key in keys[start : start + GET_LIMIT]],
                "ProjectionExpression": "pk, #position", "ExpressionAttributeNames": {"#position": "position"},
                "ConsistentRead": True,
            }}

            def attempt() -> None:
                nonlocal pending
                response = self._client.batch_get_item(RequestItems=pending)
                for item in response.get("Responses", {}).get(self._events, []):
                    found[item["pk"]["S"]] = item["position"]["S"]
                left = response.get("UnprocessedKeys") or {}
                if left:
                    pending = left
                    raise aws.Retryable(f"{len(left[self._events]['Keys'])} unprocessed keys")

            aws.call(attempt, what=f"claim read of {self._events}", policy=POLICY, attempts=self._attempts,
                     fast=self._fast)
        return found

    def scan_page_edits(self) -> list[PageEdit]:
        """Every stored revision as the page edit of the record that claimed it (the table's TTL keeps about a
        day of them), for a rebuild of the read model. A consistent scan: it sees every claim stored before it
        started."""

        def attempt() -> list[PageEdit]:
            paginator = self._client.get_paginator("scan")
            pages = paginator.paginate(
                TableName=self._events, ConsistentRead=True,
                ProjectionExpression="pk, #position, #minute, #page",
                ExpressionAttributeNames={"#position": "position", "#minute": event_index.MINUTE,
                                          "#page": event_index.PAGE},
            )
            return [edit for page in pages for item in page.get("Items", []) if (edit := page_edit_of(item))]

        return aws.call(attempt, what=f"scan of {self._events}", policy=retry.PROCESSOR_REBUILD_SCAN,
                        attempts=self._attempts, fast=self._fast)

    def _write_claims(self, changes: Sequence[ProcessedChange]) -> None:
        requests = [{"PutRequest": {"Item": event_item(change)}} for change in changes]
        batch_write(self._client, self._events, requests, attempts=self._attempts, fast=self._fast)


class DynamoDeadLetterStore:
    def __init__(self, client: Any, table: str, *, attempts: int | None = None, fast_retries: bool = False) -> None:
        self._client = client
        self._table = table
        self._attempts = attempts
        self._fast = fast_retries

    def put(self, letters: Sequence[DeadLetter]) -> None:
        for start in range(0, len(letters), BATCH_LIMIT):
            chunk = letters[start : start + BATCH_LIMIT]
            requests = [{"PutRequest": {"Item": dead_letter_item(letter)}} for letter in chunk]
            batch_write(self._client, self._table, requests, attempts=self._attempts, fast=self._fast)


def batch_write(client: Any, table: str, requests: list[dict[str, Any]], *, attempts: int | None, fast: bool) -> None:
    pending = {table: requests}

    def attempt() -> None:
        nonlocal pending
        left = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        if left:
            pending = left
            raise aws.Retryable(f"{len(left.get(table, []))} unprocessed items")

    aws.call(attempt, what=f"DynamoDB write to {table}", policy=POLICY, attempts=attempts, fast=fast)


def event_item(change: ProcessedChange) -> dict[str, Any]:
    """The events table's item, with the attributes of its time and page indexes (`wikitide.event_index`)."""
    doc = change.doc
    item = {
        "pk": {"S": change.key},
        "position": {"S": change.record.position},
        "arrival_ms": {"N": str(change.record.arrival_ms)},
        "wiki": {"S": doc["wiki"]},
        "type": {"S": doc["type"]},
        "dt": {"S": doc["dt"]},
        "title": {"S": doc["title"]},
        "doc": {"S": json.dumps(doc, ensure_ascii=False, sort_keys=True)},
        event_index.MINUTE: {"N": str(keys.epoch_minute(change.change.dt))},
        event_index.ORDER: {"S": event_index.order_key(recent_score(change), change.key)},
    }
    if change.change.title:
        item[event_index.PAGE] = {"S": keys.page_member(change.change.wiki, change.change.title)}
    return item



def page_edit_of(item: dict[str, Any]) -> PageEdit | None:
    """The page edit an events-table item stands for: None unless it is a revision with a page."""
    if not is_revision_key(item["pk"]["S"]) or event_index.PAGE not in item:
        return None
    shard, sequence = position_ordinal(item["position"]["S"])
    wiki, title = keys.split_page_member(item[event_index.PAGE]["S"])
    return PageEdit(int(item[event_index.MINUTE]["N"]), shard, sequence, wiki, title)


def dead_letter_item(letter: DeadLetter) -> dict[str, Any]:
    """The item of a dead letter, within DynamoDB's 400 KB whatever the payload: the payload as text when it is
    UTF-8, else as base64, cut to `DEAD_LETTER_PAYLOAD_LIMIT` characters (`payload_truncated`), with the length
    (`payload_bytes`) and SHA-256 (`payload_sha256`) of the whole payload."""
    payload = letter.record.data
    detail = letter.detail[:DETAIL_LIMIT].encode("utf-8", "backslashreplace").decode("utf-8")
    item: dict[str, Any] = {
        "pk": {"S": letter.record.position},
        "reason": {"S": letter.reason},
        "detail": {"S": detail or "-"},
        "arrival_ms": {"N": str(letter.record.arrival_ms)},
        "payload_bytes": {"N": str(len(payload))},
        "payload_sha256": {"S": hashlib.sha256(payload).hexdigest()},
        "expires_at": {"N": str(letter.record.arrival_ms // 1000 + DEAD_LETTER_TTL_SECONDS)},
    }
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        kept = payload[: DEAD_LETTER_PAYLOAD_LIMIT // 4 * 3]
        item["payload_base64"] = {"S": base64.b64encode(kept).decode("ascii")}
    else:
        kept = payload[:DEAD_LETTER_PAYLOAD_LIMIT]
        if kept:
            # A cut can split the last character; the whole payload is UTF-8, so only that one is dropped.
            item["payload"] = {"S": kept.decode("utf-8", "ignore") if len(kept) < len(payload) else text}
    if len(kept) < len(payload):
        item["payload_truncated"] = {"BOOL": True}
    return item
