"""Shared fixtures: the real local services (kinesis-mock, moto, redis-server) on free ports, once per session
(with pytest-xdist: once per worker process, each on its own ports), and how the suite is split over workers.

`make test` runs the suite with pytest-xdist (`--dist loadfile`, scheduled by `pytest_xdist_make_scheduler`
below). A test file is the unit of distribution: its tests run in one worker, in order, so module fixtures stay
shared. Package-scoped fixtures (`tests/fleet`: one stream, one KCL fleet) are built once per worker process, so
the fleet's two files run side by side on stacks of their own. New test files need no configuration.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

RECENTCHANGE = Path(__file__).resolve().parents[2] / "shared" / "data" / "recentchange"
# The longest units (minutes of real daemons): started first, each alone on its worker, so the run is as long as
# the longest of them rather than that plus whatever was queued behind it.
LONG_FOLDERS = ("fleet", "e2e")
# The slowest of the other files (seconds in a fresh-clone run of 2026-12-02), queued right behind the long units,
# longest first: left in collection order, test_processor_faults.py started 18 minutes in and ran alone for the last
# 6 (`scripts/test_timeline.py`).
SLOW_FILES = (
    "tests/integration/test_counters_fallback.py",  # 280
    "tests/integration/test_processor_faults.py",  # 277
    "tests/integration/test_deploy.py",  # 251
    "tests/unit/test_api_params_hostile.py",  # 240
    "tests/integration/test_stores.py",  # 155
    "tests/integration/test_day_queries.py",  # 139
    "tests/integration/test_rolling_windows.py",  # 126
    "tests/integration/test_archive.py",  # 115
    "tests/integration/test_poison_batch.py",  # 112
)


def distribution_group(nodeid: str) -> str:
    """The xdist unit of a test: its file."""
    return nodeid.split("::", 1)[0]


def is_long_group(group: str) -> bool:
    parts = group.split("/")
    return len(parts) > 2 and parts[0] == "tests" and parts[1] in LONG_FOLDERS


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With `--dist loadfile` (what `make test` passes): one unit per test file, and the long units
    (`LONG_FOLDERS`) first with nothing queued behind them. (xdist's own `loadgroup` marks do not reach its
    scheduler under pytest 9, which no longer takes a changed `item._nodeid`.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SuiteScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return distribution_group(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            # Only the long units go first: starting the slow integration files beside them as well (tried in two
            # fresh-clone runs) kept the load average at 30 for the whole run and made bounded waits fail.
            for group in [g for g in SLOW_FILES if g in self.workqueue][::-1]:
                self.workqueue.move_to_end(group, last=False)
            for group in [g for g in self.workqueue if is_long_group(g)][::-1]:
                self.workqueue.move_to_end(group, last=False)
            super()._assign_work_unit(node)

        def _reschedule(self, node: Any) -> None:
            # A worker runs a test only once it holds the next one (or is told to shut down): the long unit's
            # last test is let go by giving the worker its next unit, or shutting it down, as soon as that last
            # test is all that is left. Held any longer, the unit's stack (daemons, emulators) idles to the end.
            running = self.assigned_work.get(node, {})
            left = sum(not done for group, tests in running.items() if is_long_group(group) for done in tests.values())
            if left > 1:
                return
            super()._reschedule(node)

    return SuiteScheduling(config, log)


MEASURED: list[tuple[str, str]] = []
MEASURED_PREFIX = "measured: "


@pytest.fixture
def measure(request: pytest.FixtureRequest) -> Callable[[str, object], None]:
    """Record a figure a test measured; printed at the end of the run under "measurements". It travels in the
    test's report (`user_properties`), so it reaches the terminal from pytest-xdist workers too."""

    def record(name: str, value: object) -> None:
        request.node.user_properties.append((MEASURED_PREFIX + name, str(value)))

    return record


TIMELINE = os.environ.get("WIKITIDE_TEST_TIMELINE")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """With WIKITIDE_TEST_TIMELINE=FILE: one line per test (worker, start, end, node id), to see how a run's time
    was spent across the workers (`scripts/test_timeline.py FILE`)."""
    started = time.time()
    yield
    if TIMELINE:
        with open(TIMELINE, "a", encoding="utf-8") as out:
            out.write(f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}\t{started:.3f}\t{time.time():.3f}\t"
                      f"{item.nodeid}\n")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        MEASURED.extend((name[len(MEASURED_PREFIX):], value) for name, value in report.user_properties
                        if isinstance(name, str) and name.startswith(MEASURED_PREFIX))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if MEASURED:
        terminalreporter.section("measurements")
        for name, value in MEASURED:
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """kinesis-mock, moto and redis-server, started by the project's own launcher; the endpoints go into the
    environment as the AWS SDK variables, exactly as the pipeline's processes get them."""
    from wikitide.localstack.launcher import LocalStack
    from wikitide.localstack.services import Ports, free_port

    ports = Ports(
        kinesis=free_port(), kinesis_tls=free_port(), moto=free_port(), redis=free_port(), api=free_port()
    )
    stack = LocalStack(state_dir=tmp_path_factory.mktemp("local-stack"), ports=ports, stack_name="wt-tests")
    stack.start_infrastructure()
    saved = {k: os.environ.get(k) for k in stack.env}
    os.environ.update(stack.env)
    try:
        yield stack
    finally:
        stack.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    """A redis-server of the module's own (not the session stack's), started as the local stack starts it: for
    tests that load so much, or read so precisely (SLOWLOG, INFO), that a shared server would disturb them."""
    from wikitide.localstack.services import Ports, free_port, port_open, redis_server
    from wikitide.localstack.supervisor import Supervisor

    port = free_port()
    state = tmp_path_factory.mktemp("redis")
    supervisor = Supervisor(Path(state) / "logs")
    supervisor.start(redis_server(Ports(redis=port), state))
    assert port_open(port)
    try:
        yield redis.Redis(port=port, decode_responses=True)
    finally:
        supervisor.stop_all()


@pytest.fixture
def redis_url(local_stack: object) -> str:
    """A real, empty redis-server database."""
    url: str = local_stack.env["REDIS_URL"]  # type: ignore[attr-defined]
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def provisioned(local_stack: object) -> object:
    """The CloudFormation template deployed under a fresh stack name: its own stream, tables and bucket."""
    from wikitide import stack
    from wikitide.aws import make_client
    from wikitide.settings import Settings

    settings = Settings.from_env()
    name = f"wt-{uuid.uuid4().hex[:10]}"
    return stack.deploy_local(make_client(settings, "cloudformation"), make_client(settings, "kinesis"), name)
