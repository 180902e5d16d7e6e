"""One 4-shard stack, one fleet and one traffic generator for all fleet scenarios (starting JVMs and waiting for
KCL 3's leader dominates the cost). Each scenario brings the fleet to the workers it needs (`Fleet.ensure`), so
any one of them also runs alone. Figures measured by the scenarios are printed at the end of the session."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from kcl_app.progress import read_journal
from tests.conftest import RECENTCHANGE
from tests.fleet import caught_up, checker
from tests.fleet.harness import Fleet, LeaseTable, wait_until, write_fleet_properties
from tests.fleet.traffic import Sent, Traffic, load_events

RECORDING = RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson"
REDIS_DB = 3  # the fleet's own database: other tests flush db 0
SHARDS = 4
CATCH_UP_TIMEOUT = 300.0  # a bound, not a wait: the check returns as soon as every checkpoint is there
RATE = 40.0  # records/s: KCL 3 balances by load, so the fleet needs steady traffic to spread leases

@dataclass
class FleetStack:
    env: dict[str, str]
    stream: str
    events_table: str
    counters_table: str
    producer_state_table: str
    application: str
    kinesis: Any
    dynamodb: Any
    redis: redis.Redis
    state_dir: Path
    # Records other sources (the real producer) put on the stream: every later check expects them too.
    other_sources: list[Sent] = field(default_factory=list)


@pytest.fixture(scope="package")
def fleet_stack(local_stack: Any, tmp_path_factory: pytest.TempPathFactory) -> FleetStack:
    from wikitide import stack
    from wikitide.aws import make_client
    from wikitide.settings import Settings

    settings = Settings.from_env()
    name = f"wt-fleet-{uuid.uuid4().hex[:8]}"
    resources = stack.deploy_local(
        make_client(settings, "cloudformation"), make_client(settings, "kinesis"), name,
        parameters={"ShardCount": str(SHARDS)},
    )
    redis_url = local_stack.env["REDIS_URL"].rsplit("/", 1)[0] + f"/{REDIS_DB}"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    env = {**local_stack.env, "WIKITIDE_STACK": name, "REDIS_URL": redis_url, "WIKITIDE_KCL_JOURNAL": "1"}
    return FleetStack(
        env=env, stream=resources.stream_name, events_table=resources.events_table,
        counters_table=resources.counters_table, producer_state_table=resources.producer_state_table,
        application=f"{name}-kcl",
        kinesis=make_client(settings, "kinesis"), dynamodb=make_client(settings, "dynamodb"), redis=client,
        state_dir=tmp_path_factory.mktemp("fleet"),
    )


@pytest.fixture(scope="package")
def fleet(fleet_stack: FleetStack) -> Iterator[Fleet]:
    properties = write_fleet_properties(fleet_stack.state_dir / "fleet.properties")
    running = Fleet(fleet_stack.env, properties, fleet_stack.state_dir)
    try:
        yield running
    finally:
        running.stop_all()


@pytest.fixture(scope="package")
def traffic(fleet_stack: FleetStack) -> Iterator[Traffic]:
    generator = Traffic(fleet_stack.kinesis, fleet_stack.stream, load_events(RECORDING), rate=RATE)
    generator.start()
    try:
        yield generator
    finally:
        generator.stop()


@pytest.fixture(scope="package")
def leases(fleet_stack: FleetStack) -> LeaseTable:
    return LeaseTable(fleet_stack.dynamodb, fleet_stack.application)


@pytest.fixture(scope="package")
def api_client(fleet_stack: FleetStack) -> Any:
    from api import create_app
    from wikitide.metrics import NULL_METRICS
    from wikitide.settings import Settings

    # The checker's reads are not the API's traffic; nor would a publisher in this process outlive the fleet's moto.
    app = create_app(Settings.from_env(fleet_stack.env), metrics=NULL_METRICS)
    return app.test_client()


@pytest.fixture
def exactly_once(
    fleet_stack: FleetStack, traffic: Traffic, api_client: Any, leases: LeaseTable,
    measure: Callable[[str, object], None],
) -> Callable[..., checker.Report]:
    """Pause the traffic, wait (bounded) until every shard's checkpoint is at or past the last record sent to it
    (the pipeline's own progress: `tests.fleet.caught_up`), then compare every store with what was sent, once:
    the processor checkpoints only after a batch is in every store, so a key missing now was lost, and the
    failure says which shard and sequence numbers, and whether a processor ever saw them. Returns the report.
    Traffic resumes afterwards, unless `hold`: then the caller reads a quiet fleet (`traffic.sent` is what was
    checked) and calls `traffic.resume()`."""

    def get_json(path: str) -> Any:
        response = api_client.get(path)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    events_view = checker.DynamoEventsView(fleet_stack.dynamodb, fleet_stack.events_table)
    views: list[checker.StoreView | checker.MultiStoreView] = [
        events_view,
        checker.DynamoCountersView(fleet_stack.dynamodb, fleet_stack.counters_table),
        checker.RedisMinutesView(fleet_stack.redis),
        checker.RedisWikiMinutesView(fleet_stack.redis),
        checker.RedisPagesView(fleet_stack.redis),
        checker.ApiStatsView(get_json),
    ]

    def run(timeout: float = CATCH_UP_TIMEOUT, hold: bool = False, also: Sequence[Sent] = ()) -> checker.Report:
        """`also`: records another source (the real producer) put on the stream, without shard or sequence;
        they are covered by the wait when the traffic put records on every shard after them, and every later
        check of the session expects them too."""
        traffic.pause()
        resume = True
        try:
            assert not traffic.errors, traffic.errors[:5]
            fleet_stack.other_sources.extend(also)
            sent = traffic.sent
            others = list(fleet_stack.other_sources)
            expected = checker.Expected.of([*sent, *others])
            states: list[caught_up.ShardState] = []

            def all_caught_up() -> bool:
                states[:] = caught_up.shard_states(
                    sent, leases.leases(), caught_up.kinesis_shards(fleet_stack.kinesis, fleet_stack.stream))
                return not caught_up.behind(states)

            started = time.monotonic()
            wait_until(all_caught_up, timeout=timeout, interval=1.0,
                       describe=lambda: "shards behind: " + "; ".join(map(str, caught_up.behind(states))))
            measure("checkpoints caught up with the source after the traffic paused",
                    f"{time.monotonic() - started:.1f}s")
            report = checker.check(expected, views)
            if report.lost:
                held = events_view.held()
                lost = [key for key in expected.minutes if not held[key]]
                raise AssertionError(f"{report}\nLOST (checkpoints passed them): " + caught_up.explain_lost(
                    lost, [*sent, *others], read_journal(fleet_stack.redis), states))
            resume = not hold
            return report
        finally:
            if resume:
                traffic.resume()

    return run
