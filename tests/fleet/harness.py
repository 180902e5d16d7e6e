"""A fleet of real KCL MultiLangDaemon workers (`wikitide consume` subprocesses) and what they share: the lease table.

Each worker has a stable worker id, its own state directory (effective properties, logs) and its own process
group, so a signal reaches the wrapper, the JVM and its processor children alike (SIGKILL, SIGSTOP), while a
SIGTERM goes to the wrapper only, which forwards it to the daemon (a graceful shutdown with final checkpoints).
Every process started here is stopped by `Fleet.stop_all`, which the fixtures call even when a test fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kcl_app.daemon import read_properties
from wikitide.errors import ConfigError
from wikitide.fleet_reader import read_leases
from wikitide.fleet_status import LeaseInfo
from wikitide.localstack.services import CLIENT_NICE

T = TypeVar("T")

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LOCAL_PROPERTIES = REPO / "properties" / "local.properties"
FLEET_PROPERTIES = HERE / "fleet.properties"
SHARD_END = "SHARD_END"


def wait_until(predicate: Callable[[], T], *, timeout: float, interval: float = 1.0,
               describe: Callable[[], str] = lambda: "") -> T:
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout:.0f}s; {describe()}")
        time.sleep(interval)


def wait_while_progressing(done: Callable[[], bool], progress: Callable[[], object], *, stall: float,
                           timeout: float, interval: float = 1.0, describe: Callable[[], str] = lambda: "") -> None:
    """Poll until `done()`; fail when `progress()` (a figure of the pipeline's own progress, such as a saved
    offset) has not changed for `stall` seconds, or after `timeout` in all. A loaded machine makes progress slow,
    not absent: the bound is on the stall."""
    started = last_change = time.monotonic()
    last = progress()
    while not done():
        now = time.monotonic()
        current = progress()
        if current != last:
            last, last_change = current, now
        if now - last_change >= stall or now - started >= timeout:
            what = "no progress" if now - last_change >= stall else "not done"
            raise AssertionError(f"{what} within {min(stall, timeout) if what == 'no progress' else timeout:.0f}s "
                                 f"(progress {current}); {describe()}")
        time.sleep(interval)


def write_fleet_properties(path: Path) -> Path:
    """local.properties with the fleet overrides laid over it, as one file for `wikitide consume`."""
    merged = {**read_properties(LOCAL_PROPERTIES), **read_properties(FLEET_PROPERTIES)}
    path.write_text("".join(f"{key} = {value}\n" for key, value in merged.items()), encoding="utf-8")
    return path


def _die_with_parent() -> None:
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.nice(CLIENT_NICE)  # as the launcher runs its workers: the emulators first


@dataclass
class Worker:
    worker_id: str
    process: subprocess.Popen[bytes]
    state_dir: Path

    @property
    def log(self) -> Path:
        return self.state_dir / "daemon.log"

    @property
    def processor_log(self) -> Path:
        return self.state_dir / "processor.log"

    def is_running(self) -> bool:
        return self.process.poll() is None

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def terminate(self) -> None:
        """SIGTERM to the wrapper, which forwards it to the daemon: the graceful path."""
        if self.is_running():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)

    def wait_gone(self, timeout: float) -> int | None:
        """Wait for the wrapper to exit, then make sure nothing of its group survives."""
        try:
            code: int | None = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        self.signal_group(signal.SIGCONT)  # a stopped group cannot act on what follows
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        return code

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class Fleet:
    """Starts and stops workers of one KCL application; `env` is the local stack's plus the fleet's stack."""

    def __init__(self, env: dict[str, str], properties: Path, state_dir: Path) -> None:
        self._env = env
        self._properties = properties
        self._state_dir = state_dir
        self.workers: dict[str, Worker] = {}

    def start(self, worker_id: str) -> Worker:
        if worker_id in self.workers and self.workers[worker_id].is_running():
            raise RuntimeError(f"{worker_id} is already running")
        state = self._state_dir / worker_id
        state.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self._env, "WIKITIDE_PROCESSOR_LOG": str(state / "processor.log")}
        command = [
            sys.executable, "-m", "wikitide", "consume", "--properties", str(self._properties),
            "--worker-id", worker_id, "--state-dir", str(state), "--heap", "256m",
        ]
        with (state / "daemon.log").open("ab") as log:
            process = subprocess.Popen(
                command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        worker = Worker(worker_id, process, state)
        self.workers[worker_id] = worker
        return worker

    def running(self) -> list[str]:
        return sorted(w.worker_id for w in self.workers.values() if w.is_running())

    def stop(self, worker_id: str, timeout: float = 40.0) -> int | None:
        worker = self.workers.pop(worker_id)
        worker.terminate()
        return worker.wait_gone(timeout)

    def kill(self, worker_id: str) -> None:
        worker = self.workers.pop(worker_id)
        worker.signal_group(signal.SIGKILL)
        worker.wait_gone(10)

    def ensure(self, worker_ids: Iterable[str]) -> list[Worker]:
        """Exactly these workers running: start the missing ones, stop (gracefully) the others."""
        wanted = list(worker_ids)
        for worker_id in [w for w in self.workers if w not in wanted]:
            self.stop(worker_id)
        for worker_id in wanted:
            worker = self.workers.get(worker_id)
            if worker is None or not worker.is_running():
                if worker is not None:
                    worker.wait_gone(5)
                self.start(worker_id)
        return [self.workers[w] for w in wanted]

    def stop_all(self) -> None:
        for worker in self.workers.values():
            worker.signal_group(signal.SIGCONT)
            worker.terminate()
        for worker in list(self.workers.values()):
            worker.wait_gone(40)
        self.workers.clear()


class LeaseTable:
    """The KCL's lease table `<applicationName>` (read as `wikitide workers` reads it) and its leader lock."""

    def __init__(self, dynamodb: Any, application: str) -> None:
        self._dynamodb = dynamodb
        self.application = application

    def leases(self) -> list[LeaseInfo]:
        try:
            return read_leases(self._dynamodb, self.application)
        except ConfigError:  # no worker has created the table yet
            return []

    def open_owners(self) -> dict[str, str | None]:
        """Open (not SHARD_END) shard -> its lease owner."""
        return {lease.shard_id: lease.owner for lease in self.leases() if lease.checkpoint != SHARD_END}

    def counts(self, owners: dict[str, str | None] | None = None) -> dict[str | None, int]:
        counted: dict[str | None, int] = {}
        for owner in (self.open_owners() if owners is None else owners).values():
            counted[owner] = counted.get(owner, 0) + 1
        return counted

    def leader(self) -> str | None:
        try:
            item = self._dynamodb.get_item(
                TableName=f"{self.application}-CoordinatorState", Key={"key": {"S": "Leader"}}
            ).get("Item")
        except self._dynamodb.exceptions.ResourceNotFoundException:
            return None
        return item.get("ownerName", {}).get("S") if item else None

