"""Top pages of the long windows (1 h, 24 h) from the rolling sets the processor keeps in a real redis-server,
exact against a plain count of the same generated events.

The events (about 150,000 over 1,500 minutes, 40 wikis, skewed page popularity, 3 shards, late events, batches
delivered twice) go through the processor's own Redis path (`RedisMirror.count` of the total cells' states and
the page edits, as `process_batch` hands them over after DynamoDB); the expected answers are counted from the
events themselves.
"""

from __future__ import annotations

import itertools
import random
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from api import queries
from api.redis_stats import RedisStats
from kcl_app.ledger import CellKey, CellState, PageEdit
from kcl_app.redis_mirror import Rebuilder, RedisMirror
from wikitide import cells, keys
from wikitide.localstack.services import Ports as StackPorts
from wikitide.localstack.services import free_port, port_open, redis_server
from wikitide.localstack.supervisor import Supervisor

pytestmark = pytest.mark.integration

FIRST_MINUTE = 29_000_000
MINUTES = 1500
EVENTS_PER_MINUTE = 100
WIKIS = [f"w{i:02d}wiki" for i in range(40)]
SHARDS = ["shardId-000000000000", "shardId-000000000001", "shardId-000000000002"]
BATCH = 400


@dataclass(frozen=True)
class Event:
    minute: int
    wiki: str
    title: str


def generate(seed: int = 9) -> list[Event]:
    """Events in arrival order: mostly in minute order, 5% late by up to 90 minutes; page popularity skewed."""
    rng = random.Random(seed)
    titles = [f"Page {i}" for i in range(4000)] + ["Zürich", "Zz", "Z", "Page 1/Talk"]
    title_weights = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(titles))))
    wiki_weights = list(itertools.accumulate(1 / (rank + 1) ** 0.7 for rank in range(len(WIKIS))))
    events = []
    for offset in range(MINUTES):
        minute = FIRST_MINUTE + offset
        for _ in range(rng.randint(EVENTS_PER_MINUTE // 2, EVENTS_PER_MINUTE * 3 // 2)):
            late = rng.random() < 0.05
            at = max(FIRST_MINUTE, minute - rng.randint(1, 90)) if late else minute
            wiki = rng.choices(WIKIS, cum_weights=wiki_weights)[0]
            events.append(Event(at, wiki, rng.choices(titles, cum_weights=title_weights)[0]))
    return events


class Feeder:
    """Turns events into what `process_batch` hands the mirror, batch by batch, per shard: the total cells' states
    and the claimed revisions' page edits."""

    def __init__(self) -> None:
        self.values: dict[tuple[int, str], int] = Counter()
        self.sequence: dict[tuple[int, str], int] = {}
        self.next_sequence = dict.fromkeys(SHARDS, 1)
        self.final: dict[tuple[int, str], CellState] = {}
        self.edits: list[PageEdit] = []

    def batch(self, batch: list[Event]) -> tuple[list[CellState], list[PageEdit]]:
        touched: dict[tuple[int, str], None] = {}
        edits = []
        for event in batch:
            shard = SHARDS[zlib.crc32(keys.page_member(event.wiki, event.title).encode()) % len(SHARDS)]
            sequence = self.next_sequence[shard]
            self.next_sequence[shard] += 1
            cell = (event.minute, shard)
            self.values[cell] += 1
            self.sequence[cell] = sequence
            touched[cell] = None
            edits.append(PageEdit(event.minute, shard, sequence, event.wiki, event.title))
        states = [
            CellState(CellKey(minute, cells.TOTAL), shard, self.sequence[(minute, shard)],
                      {"events": self.values[(minute, shard)]})
            for minute, shard in touched
        ]
        self.final.update({(s.cell.minute, s.shard): s for s in states})
        self.edits.extend(edits)
        return states, edits


def expected_top(events: list[Event], last: int, length: int, wiki: str | None, limit: int) -> list[dict]:
    counts = Counter((e.wiki, e.title) for e in events
                     if last - length < e.minute <= last and (wiki is None or e.wiki == wiki))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0][1], item[0][0]))[:limit]
    return [{"wiki": w, "title": t, "edits": n} for (w, t), n in ranked]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    """A redis-server of its own, started as the local stack starts it."""
    port = free_port()
    state = tmp_path_factory.mktemp("redis")
    supervisor = Supervisor(Path(state) / "logs")
    spec = redis_server(StackPorts(redis=port), state)
    supervisor.start(spec)
    assert port_open(port)
    try:
        yield redis.Redis(port=port, decode_responses=True)
    finally:
        supervisor.stop_all()


@pytest.fixture(scope="module")
def loaded(client: redis.Redis) -> tuple[list[Event], Feeder]:
    events = generate()
    feeder = Feeder()
    mirror = RedisMirror(client)
    previous: tuple[list[CellState], list[PageEdit]] = ([], [])
    for number, start in enumerate(range(0, len(events), BATCH)):
        states, edits = feeder.batch(events[start : start + BATCH])
        mirror.count(states, edits)
        if number % 7 == 0:
            mirror.count(*previous)  # a redelivered batch moves nothing
        previous = states, edits
    return events, feeder


def answers(client: redis.Redis, events: list[Event]) -> list[tuple[list[dict], list[dict]]]:
    stats = RedisStats(client)
    last = int(client.get(keys.LATEST_MINUTE) or 0)
    busiest = Counter(e.wiki for e in events).most_common()
    wikis = [None, busiest[0][0], busiest[len(busiest) // 2][0], busiest[-1][0]]
    pairs = []
    for window, length in (("24h", 1440), ("1h", 60)):
        for wiki in wikis:
            for limit in (10, 100):
                got = queries.top_pages(stats, window, wiki, limit)["pages"]
                pairs.append((got, expected_top(events, last, length, wiki, limit)))
    return pairs


def _zunionstore_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_zunionstore", {}).get("calls", 0))


def test_long_windows_are_exact_and_read_without_a_union(client: redis.Redis, loaded) -> None:
    events, _ = loaded
    assert int(client.get(keys.LATEST_MINUTE)) == max(e.minute for e in events)
    unions = _zunionstore_calls(client)
    client.config_set("slowlog-log-slower-than", 0)
    client.slowlog_reset()
    pairs = answers(client, events)
    slowest = max(entry["duration"] for entry in client.slowlog_get(1000))
    client.config_set("slowlog-log-slower-than", 10000)
    for got, expected in pairs:
        assert got == expected
    assert all(expected for _, expected in pairs)  # every window asked holds pages
    assert _zunionstore_calls(client) == unions  # no window was summed from its minute sets
    print(f"\n{len(events)} events; {len(pairs)} long-window queries; slowest Redis command {slowest} µs")


def test_a_rebuild_from_the_cells_rebuilds_the_windows(client: redis.Redis, loaded) -> None:
    events, feeder = loaded
    before = answers(client, events)
    client.flushdb()
    mirror = RedisMirror(client)
    assert Rebuilder(client, mirror, lambda: list(feeder.final.values()), lambda: feeder.edits).rebuild() is not None
    after = answers(client, events)
    assert [got for got, _ in after] == [got for got, _ in before]
    for got, expected in after:
        assert got == expected


def test_a_window_left_behind_by_more_than_its_length_starts_again(client: redis.Redis, loaded) -> None:
    events, _ = loaded
    far = max(e.minute for e in events) + 3000
    late = Event(far, "w00wiki", "Later")
    feeder = Feeder()
    feeder.next_sequence = dict.fromkeys(SHARDS, 10**9)
    RedisMirror(client).count(*feeder.batch([late, late]))
    stats = RedisStats(client)
    for window in ("24h", "1h"):
        top = queries.top_pages(stats, window, None, 10)["pages"]
        assert top == [{"wiki": "w00wiki", "title": "Later", "edits": 2}]
        assert queries.top_pages(stats, window, "w01wiki", 10)["pages"] == []
    leftovers = defaultdict(int)
    for length in keys.ROLLING_WINDOWS:
        for key in client.smembers(keys.window_wikis_key(length)):
            leftovers[key] += client.zcard(key)
    assert dict(leftovers) == {keys.window_pages_key(1440, "w00wiki"): 1, keys.window_pages_key(60, "w00wiki"): 1}
