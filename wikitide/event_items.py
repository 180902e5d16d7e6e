"""The events table's item layout, shared by the KCL processor (writer: `kcl_app/dynamo_store.py`) and the API
(reader: `api/dynamo_edits.py`), as `wikitide.cells` is for the counters table. Pure: no boto3.

One item per distinct change, written once by the record that claims it:

- `pk`: the change's de-duplication key (`RecentChange.dedup_key`);
- `position`: the stream position (`<shard id>#<sequence number>`) of the record that holds the claim;
- `page` and `order`: the keys of the `changes-by-page` index, the page (`wikitide.events.page_key`) and
  `change_order`, so a page's newest changes are one Query, newest first. This index replaces a table of the
  latest change per page, which cost a conditional write per page per batch: the claim's batched write now
  carries what that table held, and a newer change can never be hidden by an older one written later;
- `doc`: the enriched change as JSON; `wiki`, `type`, `dt`, `title`, `arrival_ms` beside it for queries.
"""

from __future__ import annotations

from datetime import datetime

KEY = "pk"
POSITION = "position"
PAGE = "page"
ORDER = "order"
DOC = "doc"
BY_PAGE_INDEX = "changes-by-page"


def change_order(dt: datetime, change_id: int | None, key: str) -> str:
    """Sorts as the changes of one page happened: event time in milliseconds, then the wiki's own change id
    (the recent-change id, else the revision id; below 2^53, so 16 digits), both zero-padded, then the change's
    key, so that two changes alike in both (events without ids) still have one order."""
    return f"{int(dt.timestamp() * 1000):014d}#{change_id or 0:016d}#{key}"
