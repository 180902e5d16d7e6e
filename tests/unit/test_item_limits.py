"""Items written to DynamoDB stay within its limits (400 KB an item, 2,048 bytes a partition key) whatever a
record holds: dead letters of any size or encoding, and the largest change the parse accepts."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from kcl_app.dynamo_store import dead_letter_item, event_item
from kcl_app.enrich import COMMENT_LIMIT, enrich
from kcl_app.handler import DeadLetter, ProcessedChange, StreamRecord
from tests.unit.test_hostile_records import ITEM_LIMIT, KEY_LIMIT, _item_bytes
from wikitide.events import parse_change

ARRIVAL_MS = 1_630_070_500_000


def _letter(payload: bytes, detail: str = "x") -> DeadLetter:
    return DeadLetter(StreamRecord(payload, "shardId-000000000000", 49_600_000_000_000_000_001, ARRIVAL_MS),
                      "not_json", detail)


@pytest.mark.parametrize(
    "payload",
    [b"\xff" * 1_048_576, ("é" * 524_288).encode(), b"x" * 1_048_576, b"\x00\xff" * 200_000, b""],
    ids=["binary-1MiB", "two-byte-text-1MiB", "ascii-1MiB", "binary-400KB", "empty"],
)
def test_a_dead_letter_fits_whatever_its_payload(payload: bytes) -> None:
    item = dead_letter_item(_letter(payload, detail="\ud800" + "d" * 10_000))
    assert _item_bytes(item) < ITEM_LIMIT
    assert item["payload_bytes"]["N"] == str(len(payload))
    assert item["payload_sha256"]["S"] == hashlib.sha256(payload).hexdigest()
    json.dumps(item).encode("utf-8")
    if "payload_base64" in item:
        kept = base64.b64decode(item["payload_base64"]["S"])
    else:
        kept = item.get("payload", {"S": ""})["S"].encode("utf-8")
    assert payload.startswith(kept)
    assert ("payload_truncated" in item) == (len(kept) < len(payload))


def test_the_largest_accepted_change_fits_an_item() -> None:
    event = {
        "meta": {"id": "i" * 255, "dt": "2021-08-27T13:20:17Z", "domain": "d" * 255},
        "type": "t" * 255, "wiki": "w" * 255, "title": "\U0001f600" * 63 + "abc", "user": "\u00e9" * 127,
        "comment": "\U0001f600" * 300_000, "server_url": "u" * 255, "server_name": "s" * 255,
        "revision": {"new": 2**53 - 1}, "length": {"new": 2**53 - 1, "old": 0}, "id": 2**53 - 1,
    }
    change = parse_change(json.dumps(event, ensure_ascii=False).encode(), ARRIVAL_MS)
    doc = enrich(change)
    assert len(doc["comment"]) == COMMENT_LIMIT and doc["comment_chars"] == 300_000
    record = StreamRecord(b"", "shardId-000000000000", 1, ARRIVAL_MS)
    item = event_item(ProcessedChange(change, doc, record, change.dedup_key))
    assert _item_bytes(item) < 40_000  # a tenth of the limit
    assert len(item["pk"]["S"].encode()) < KEY_LIMIT
    assert len(f"{change.wiki}#{change.title}".encode()) < KEY_LIMIT  # the latest-change table's key
