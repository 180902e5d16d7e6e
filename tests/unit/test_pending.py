import random

from producer.batcher import MAX_BATCH_BYTES, MAX_BATCH_RECORDS, Entry
from producer.pending import Pending


def _entry(n: int, page: str, size: int = 10) -> Entry:
    return Entry(data=str(n).encode().ljust(size), partition_key=page, sse_id=f"id-{n}")


def _drain(pending: Pending) -> tuple[list[list[Entry]], list[Entry]]:
    calls, passed = [], []
    while pending.has_heads:
        calls.append(pending.next_call())
        passed.extend(pending.written())
    return calls, passed


def test_a_call_holds_one_entry_per_page_and_pages_keep_their_order() -> None:
    rng = random.Random(3)
    pending = Pending()
    entries = [_entry(n, rng.choice("AAAABBC") + str(rng.randrange(40))) for n in range(3000)]
    for entry in entries:
        pending.add(entry, now=0.0)
    calls, passed = _drain(pending)
    for call in calls:
        assert len({e.partition_key for e in call}) == len(call)
    written = [e for call in calls for e in call]
    for page in {e.partition_key for e in entries}:
        assert [e for e in written if e.partition_key == page] == [e for e in entries if e.partition_key == page]
    assert passed == entries


def test_hot_pages_no_longer_split_every_batch_into_small_calls() -> None:
    pending = Pending()
    entries = [_entry(n, "hot" if n % 10 == 0 else f"p{n}") for n in range(3000)]  # one page has 300 changes
    for entry in entries:
        pending.add(entry, now=0.0)
    first = pending.next_call()
    assert len(first) == MAX_BATCH_RECORDS
    pending.written()
    calls, _ = _drain(pending)
    # Every call is full until only the hot page is left: its 300 changes need 300 calls in any order-keeping plan.
    assert [len(c) for c in calls[:4]] == [MAX_BATCH_RECORDS] * 4
    assert len(calls) + 1 == 300


def test_the_durable_position_never_passes_an_unwritten_entry() -> None:
    pending = Pending()
    entries = [_entry(0, "hot"), _entry(1, "hot"), _entry(2, "a"), _entry(3, "b")]
    for entry in entries:
        pending.add(entry, now=0.0)
    assert pending.next_call() == [entries[0], entries[2], entries[3]]
    assert pending.written() == [entries[0]]  # 1 is not written yet, so 2 and 3 wait behind it
    assert pending.next_call() == [entries[1]]
    assert pending.written() == entries[1:]
    assert len(pending) == 0


def test_an_unwritten_call_blocks_the_next_plan() -> None:
    pending = Pending()
    pending.add(_entry(0, "a"), now=0.0)
    pending.next_call()
    try:
        pending.next_call()
    except RuntimeError:
        pass
    else:
        raise AssertionError("a second plan before `written` must fail")


def test_a_call_stops_at_the_byte_limit() -> None:
    pending = Pending()
    for n in range(8):
        pending.add(_entry(n, f"p{n}", size=MAX_BATCH_BYTES // 4), now=0.0)
    sizes = []
    while pending.has_heads:
        sizes.append(len(pending.next_call()))
        pending.written()
    assert sizes == [3, 3, 2]


def test_a_call_is_ready_when_full_or_when_its_oldest_entry_waited_the_linger() -> None:
    pending = Pending()
    assert not pending.is_ready(100.0, 0.25) and pending.deadline(0.25) is None
    pending.add(_entry(0, "a"), now=10.0)
    pending.add(_entry(1, "b"), now=10.2)
    assert pending.deadline(0.25) == 10.25
    assert not pending.is_ready(10.2, 0.25)
    assert pending.is_ready(10.25, 0.25)
    for n in range(2, MAX_BATCH_RECORDS):
        pending.add(_entry(n, f"p{n}"), now=10.2)
    assert pending.is_ready(10.2, 0.25)


def test_a_call_holds_no_more_than_the_writer_asks_for() -> None:
    pending = Pending()
    for n in range(100):
        pending.add(_entry(n, f"p{n}"), now=0.0)
    assert not pending.is_ready(0.0, 0.25, limit=101) and pending.is_ready(0.0, 0.25, limit=100)
    assert len(pending.next_call(limit=32)) == 32
