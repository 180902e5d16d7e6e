"""The time and page indexes of the events table, shared by the KCL processor (writer: `kcl_app/dynamo_store.py`)
and the API (reader: `api/dynamo_edits.py`), as `wikitide.cells` is for the counters. Pure: no boto3.

Each stored event carries, beside its document:
- `minute` (number): its event-time epoch minute, the partition key of the `recent-by-minute` index;
- `order` (string): `<event time in ms, 14 digits>#<de-duplication key>`, the sort key of both indexes, so a
  minute's (or a page's) changes sort by event time, then key: the order of the recent changes in Redis
  (`wikitide.keys.recent_member`), newest last;
- `page` (string): `<wiki><TAB><title>` (`wikitide.keys.page_member`), the partition key of the `changes-by-page`
  index; absent for a change without a title (a sparse index).
"""

from __future__ import annotations

RECENT_INDEX = "recent-by-minute"
PAGE_INDEX = "changes-by-page"
MINUTE = "minute"
ORDER = "order"
PAGE = "page"
DOC = "doc"
_MS_DIGITS = 14


def order_key(ms: int, key: str) -> str:
    return f"{ms:0{_MS_DIGITS}d}#{key}"


def split_order_key(order: str) -> tuple[int, str]:
    """`(event time in ms, de-duplication key)` of an `order` value."""
    ms, _, key = order.partition("#")
    return int(ms), key


def first_order_of(ms: int) -> str:
    """Sorts before every `order_key(ms, ...)` and after every key of an earlier millisecond."""
    return f"{ms:0{_MS_DIGITS}d}#"
