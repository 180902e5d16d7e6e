"""One 4-shard stack, one fleet and one traffic generator for all fleet scenarios (starting JVMs and waiting for
KCL 3's leader dominates the cost). Each scenario brings the fleet to the workers it needs (`Fleet.ensure`), so
any one of them also runs alone. Figures measured by the scenarios are printed at the end of the session."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import RECENTCHANGE
from tests.fleet import checker
from tests.fleet.harness import Fleet, LeaseTable, wait_until, write_fleet_properties
from tests.fleet.traffic import Traffic, load_events

RECORDING = RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson"
REDIS_DB = 3  # the fleet's own database: other tests flush db 0
SHARDS = 4
RATE = 40.0  # records/s: KCL 3 balances by load, so the fleet needs steady traffic to spread leases

MEASURED: list[tuple[str, str]] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if MEASURED:
        terminalreporter.section("fleet measurements")
        for name, value in MEASURED:
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture
def measure() -> Callable[[str, object], None]:
    def record(name: str, value: object) -> None:
        MEASURED.append((name, str(value)))

    return record


@dataclass
class FleetStack:
    env: dict[str, str]
    stream: str
    events_table: str
    application: str
    kinesis: Any
    dynamodb: Any
    redis: redis.Redis
    state_dir: Path


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
        env=env, stream=resources.stream_name, events_table=resources.events_table, application=f"{name}-kcl",
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
    from wikitide.settings import Settings

    app = create_app(Settings.from_env(fleet_stack.env))
    return app.test_client()


@pytest.fixture
def exactly_once(
    fleet_stack: FleetStack, traffic: Traffic, api_client: Any
) -> Callable[[float], checker.Report]:
    """Pause the traffic, wait (bounded) until every sent event is in every store, then check again after a
    pause for anything counted twice. Returns the final report. Traffic resumes afterwards, unless `hold`:
    then the caller reads a quiet fleet (`traffic.sent` is what was checked) and calls `traffic.resume()`."""

    def get_json(path: str) -> Any:
        response = api_client.get(path)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    views = [
        checker.DynamoEventsView(fleet_stack.dynamodb, fleet_stack.events_table),
        checker.RedisMinutesView(fleet_stack.redis),
        checker.ApiStatsView(get_json),
    ]

    def run(timeout: float = 120.0, hold: bool = False) -> checker.Report:
        traffic.pause()
        resume = True
        try:
            assert not traffic.errors, traffic.errors[:5]
            sent = traffic.sent
            expected = checker.Expected({s.dedup_key: s.minute for s in sent})
            last: list[checker.Report] = []

            def complete() -> bool:
                last[:] = [checker.check(expected, views)]
                return last[0].lost == 0

            wait_until(complete, timeout=timeout, interval=2.0, describe=lambda: str(last[0] if last else ""))
            time.sleep(3.0)  # a late second count would show up now
            report = checker.check(expected, views)
            resume = not hold
            return report
        finally:
            if resume:
                traffic.resume()

    return run
