"""The DynamoDB counter-cell layout, shared by the KCL processor (writer: `kcl_app/dynamo_ledger.py`) and the API
(reader while Redis is empty: `api/dynamo_stats.py`), as `wikitide.keys` is for Redis. Pure: no boto3.

One item per (minute, scope, shard) cell of the counters table:

- `pk`, the scope: `*` (every event), `w:<wiki>` (one wiki) or `rejected` (rejected records, one counter per
  reason). Pages have no cells: their edits are the claimed revisions in the events table (`kcl_app/ledger.py`);
- `sk`, `<epoch minute, 10 digits>#<shard id>`: the cells of one scope sort by minute, so a window of a scope is
  one range Query (`window_bounds`), and shards never write the same item;
- `seq` (string): the sequence number of the last record the cell counted, the ledger's mark;
- `expires_at` (number): the table's TTL attribute;
- every other number is a counter (`wikitide.keys.COUNT_FIELDS` in the total and wiki cells, one per reason in
  the rejected cells).

Beside the cells, one item (`LATEST_KEY`) holds in `minute` the newest minute counted in the total scope.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TOTAL = "*"
REJECTED = "rejected"
WIKI_PREFIX = "w:"

MARK = "seq"
EXPIRES = "expires_at"
# `page_minute` was the index key of the page cells of earlier versions, which expire within a day of an upgrade.
NOT_COUNTERS = frozenset({"pk", "sk", MARK, EXPIRES, "page_minute"})

LATEST_KEY: Mapping[str, Any] = {"pk": {"S": "latest"}, "sk": {"S": "*"}}
LATEST_MINUTE = "minute"

# Cells outlive the longest window (24 h) with room for late events; a rebuild of Redis reads what is left.
CELL_TTL_SECONDS = 27 * 3600


def wiki_scope(wiki: str) -> str:
    return f"{WIKI_PREFIX}{wiki}"


def is_cell_scope(scope: str) -> bool:
    """A scope this version keeps (earlier versions also kept page cells, `p:...`, which expire within a day)."""
    return scope in (TOTAL, REJECTED) or scope.startswith(WIKI_PREFIX)


def wiki_of(scope: str) -> str:
    """The wiki of a wiki scope."""
    return scope.removeprefix(WIKI_PREFIX)


def sort_key(minute: int, shard: str = "") -> str:
    return f"{minute:010d}#{shard}"


def split_sort_key(sk: str) -> tuple[int, str]:
    """`(minute, shard)` of a cell's sort key."""
    minute, _, shard = sk.partition("#")
    return int(minute), shard


def window_bounds(first: int, last: int) -> tuple[str, str]:
    """Sort keys for `sk BETWEEN :low AND :high`: every shard's cell of the minutes `first..last`."""
    return sort_key(first), f"{last:010d}#~"


def item_key(scope: str, minute: int, shard: str) -> dict[str, Any]:
    return {"pk": {"S": scope}, "sk": {"S": sort_key(minute, shard)}}


def expires_at(minute: int) -> int:
    return minute * 60 + CELL_TTL_SECONDS


def counters(item: Mapping[str, Any]) -> dict[str, int]:
    """The counters of a cell item in DynamoDB's attribute-value form."""
    return {name: int(value["N"]) for name, value in item.items() if name not in NOT_COUNTERS and "N" in value}
