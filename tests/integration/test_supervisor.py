"""The local-stack supervisor with real child processes."""

import os
import signal
import sys
import time

import psutil
import pytest

from wikitide.localstack.supervisor import ServiceSpec, Supervisor

pytestmark = pytest.mark.integration

# A parent that starts a grandchild ignoring SIGTERM: the kind of process tree the KCL daemon makes.
TREE = (
    "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "time.sleep(600)']); time.sleep(600)"
)


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_a_dead_child_is_restarted_after_a_backoff_and_logged(tmp_path, caplog) -> None:
    supervisor = Supervisor(tmp_path)
    supervisor.start(ServiceSpec(name="sleeper", command=[sys.executable, "-c", "import time; time.sleep(600)"]))
    try:
        first = supervisor.pids()["sleeper"]
        os.kill(first, signal.SIGKILL)
        _wait_for(lambda: not psutil.pid_exists(first) or psutil.Process(first).status() == psutil.STATUS_ZOMBIE)
        now = time.monotonic()
        supervisor.check(now)
        assert supervisor.pids()["sleeper"] == first  # waits for the backoff first
        supervisor.check(now + 60)
        assert supervisor.pids()["sleeper"] != first
        assert "sleeper exited" in caplog.text
    finally:
        supervisor.stop_all()


def test_stopping_kills_the_whole_process_tree(tmp_path) -> None:
    supervisor = Supervisor(tmp_path)
    supervisor.start(ServiceSpec(name="tree", command=[sys.executable, "-c", TREE], stop_timeout=1))
    parent = psutil.Process(supervisor.pids()["tree"])
    _wait_for(lambda: len(parent.children()) == 1)
    tree = [parent, *parent.children(recursive=True)]
    supervisor.stop_all()
    _, alive = psutil.wait_procs(tree, timeout=5)
    assert not alive


def test_a_child_that_exits_at_start_is_reported_with_its_log(tmp_path) -> None:
    supervisor = Supervisor(tmp_path)
    spec = ServiceSpec(name="broken", command=[sys.executable, "-c", "raise SystemExit(3)"], ready=lambda: False)
    with pytest.raises(RuntimeError, match="broken exited with 3"):
        supervisor.start(spec)
    supervisor.stop_all()


def test_a_client_runs_nicer_than_the_launcher_and_an_emulator_does_not(tmp_path) -> None:
    from wikitide.localstack.services import CLIENT_NICE

    supervisor = Supervisor(tmp_path)
    sleep = [sys.executable, "-c", "import time; time.sleep(600)"]
    supervisor.start(ServiceSpec(name="client", command=sleep, nice=CLIENT_NICE))
    supervisor.start(ServiceSpec(name="emulator", command=sleep))
    try:
        own = os.getpriority(os.PRIO_PROCESS, 0)
        pids = supervisor.pids()
        assert psutil.Process(pids["client"]).nice() == min(own + CLIENT_NICE, 19)
        assert psutil.Process(pids["emulator"]).nice() == own
    finally:
        supervisor.stop_all()


def test_services_started_together_are_all_running_before_the_first_is_waited_for(tmp_path) -> None:
    # The first is ready only once the second has started: started one after the other, it would never be.
    marker = tmp_path / "second-started"
    first = ServiceSpec(name="first", command=[sys.executable, "-c", "import time; time.sleep(600)"],
                        ready=marker.exists, ready_timeout=10)
    second = ServiceSpec(name="second", command=[
        sys.executable, "-c", f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); time.sleep(600)"])
    supervisor = Supervisor(tmp_path / "logs")
    try:
        supervisor.start_together([first, second])
        assert set(supervisor.pids()) == {"first", "second"}
    finally:
        supervisor.stop_all()
