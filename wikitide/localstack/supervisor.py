"""Starts child processes, restarts the ones that die (with backoff), and stops them all, leaving no orphan.

Each child leads its own process group and is told to die with its parent (PR_SET_PDEATHSIG), so a
SIGKILLed launcher does not leave services behind. Stopping sends the child's stop signal (SIGTERM unless its
spec says otherwise) to the group leader only (the KCL daemon needs its processor children alive for its final
checkpoints), waits at most the child's `stop_timeout`, then sends SIGKILL to the whole group. Children of one
tier stop side by side, so a stop takes the longest `stop_timeout` of each tier, not their sum.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    ready: Callable[[], bool] | None = None
    ready_timeout: float = 60.0
    stop_timeout: float = 15.0
    # An emulator that keeps everything in memory has nothing to save: it can be sent SIGKILL at once.
    stop_signal: int = signal.SIGTERM
    # Services stop by tier, highest first and all of a tier at once: the pipeline before the emulators.
    tier: int = 0
    # Added to the launcher's niceness (`CLIENT_NICE` for the pipeline's processes, 0 for the emulators).
    nice: int = 0


@dataclass
class _Child:
    spec: ServiceSpec
    process: subprocess.Popen[bytes]
    restarts: int = 0
    next_restart: float | None = None


def _die_with_parent(signum: int, nice: int = 0) -> Callable[[], None]:
    """A preexec hook: the child gets `signum` when the launcher dies (SIGKILL for one that ignores SIGTERM), and
    runs `nice` steps nicer than the launcher."""

    def hook() -> None:
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)
        if nice:
            os.nice(nice)

    return hook


class Supervisor:
    def __init__(self, log_dir: Path, *, max_backoff: float = 30.0) -> None:
        self._log_dir = log_dir
        self._children: list[_Child] = []
        self._max_backoff = max_backoff
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, spec: ServiceSpec) -> None:
        self.start_together([spec])

    def start_together(self, specs: Sequence[ServiceSpec]) -> None:
        """Start every one of `specs`, then wait for each to be ready (services that do not need one another)."""
        children = []
        for spec in specs:
            # Kept as each starts: a later one failing to start still leaves the earlier ones to `stop_all`.
            children.append(_Child(spec=spec, process=self._spawn(spec)))
            self._children.append(children[-1])
        for child in children:
            self._wait_ready(child)

    def _spawn(self, spec: ServiceSpec) -> subprocess.Popen[bytes]:
        log = (self._log_dir / f"{spec.name}.log").open("ab")
        env = {**os.environ, **spec.env}
        try:
            process = subprocess.Popen(
                spec.command, cwd=spec.cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent(spec.stop_signal, spec.nice),
            )
        finally:
            log.close()
        logger.info("started %s (pid %d), log %s", spec.name, process.pid, self._log_dir / f"{spec.name}.log")
        return process

    def _wait_ready(self, child: _Child) -> None:
        spec = child.spec
        if spec.ready is None:
            return
        deadline = time.monotonic() + spec.ready_timeout
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                code = child.process.returncode
                raise RuntimeError(f"{spec.name} exited with {code}; see {self.log_path(spec.name)}")
            if spec.ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{spec.name} not ready after {spec.ready_timeout:.0f}s; see {self.log_path(spec.name)}")

    def log_path(self, name: str) -> Path:
        return self._log_dir / f"{name}.log"

    def pids(self) -> dict[str, int]:
        return {c.spec.name: c.process.pid for c in self._children}

    def restarts(self) -> dict[str, int]:
        return {c.spec.name: c.restarts for c in self._children}

    def check(self, now: float | None = None) -> None:
        """Restart children that exited, each after a backoff that doubles per restart (capped)."""
        now = time.monotonic() if now is None else now
        for child in self._children:
            code = child.process.poll()
            if code is None:
                continue
            if child.next_restart is None:
                delay = min(self._max_backoff, 2.0 ** min(child.restarts, 5))
                child.next_restart = now + delay
                logger.warning("%s exited with %s; restarting in %.0fs (restart %d)",
                               child.spec.name, code, delay, child.restarts + 1)
            elif now >= child.next_restart:
                child.restarts += 1
                child.next_restart = None
                child.process = self._spawn(child.spec)

    def stop_all(self) -> None:
        for tier in sorted({c.spec.tier for c in self._children}, reverse=True):
            _stop_together([c for c in self._children if c.spec.tier == tier])
        self._children.clear()


def _stop_together(group: list[_Child]) -> None:
    """Signal every child of a tier at once, then end each one's process group as soon as its leader exits or
    its `stop_timeout` has passed, whichever comes first."""
    started = time.monotonic()
    for child in group:
        _terminate(child)
    pending = list(group)
    while pending:
        now = time.monotonic()
        for child in list(pending):
            code = child.process.poll()
            if code is not None:
                logger.info("%s stopped (%s) in %.1fs", child.spec.name, code, now - started)
            elif now - started >= child.spec.stop_timeout:
                logger.warning("%s did not stop within %.0fs; killing it", child.spec.name, child.spec.stop_timeout)
            else:
                continue
            _kill_group(child)
            pending.remove(child)
        time.sleep(0.05)


def _terminate(child: _Child) -> None:
    if child.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.process.pid, child.spec.stop_signal)


def _kill_group(child: _Child) -> None:
    """SIGKILL whatever is left of the child's process group (the KCL daemon's processors, gunicorn's workers)."""
    process = child.process
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        logger.error("%s (pid %d) survived SIGKILL", child.spec.name, process.pid)
