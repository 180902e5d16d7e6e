"""The API under a real gunicorn, configured as the CLI and the local stack run it (`-c python:api.serving`):
the errors gunicorn answers itself are JSON, no version banner, and slow clients do not starve the workers.

The slow-client test also runs against gunicorn's former setup (2 `sync` workers) and shows that one there
waits for the slow clients: the measurement can tell starvation apart.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from wikitide.localstack.services import free_port, http_answers, wikitide_command
from wikitide.localstack.supervisor import ServiceSpec, Supervisor

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
APP = "tests.integration.api_fake_app:create()"
SERVED = ["--config", "python:api.serving", "--workers", "2"]
FORMER = ["--worker-class", "sync", "--workers", "2", "--timeout", "30"]
# Bounds only: how long a slow client trickles before it ends its request by itself.
SLOW_BOUND_SECONDS = 90.0
FORMER_SLOW_SECONDS = 4.0
TRICKLE_SECONDS = 0.2


@contextmanager
def gunicorn(args: list[str], tmp_path: Path) -> Iterator[tuple[str, int]]:
    """(base URL, master pid) of a gunicorn serving the API over in-memory ports."""
    port = free_port()
    binary = Path(wikitide_command()[0]).parent / "gunicorn"
    supervisor = Supervisor(tmp_path / f"logs-{port}")
    supervisor.start(ServiceSpec(
        name="api", cwd=REPO, command=[str(binary), *args, "--bind", f"127.0.0.1:{port}", APP],
        ready=lambda: http_answers(f"http://127.0.0.1:{port}/health"), ready_timeout=120,
    ))
    try:
        yield f"http://127.0.0.1:{port}", supervisor.pids()["api"]
    finally:
        supervisor.stop_all()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with gunicorn(SERVED, tmp_path_factory.mktemp("api")) as (url, _):
        yield url


def test_an_over_long_request_line_is_414_in_json(served: str) -> None:
    response = httpx.get(f"{served}/v1/stats?window=1m&pad={'a' * 5000}", timeout=30)
    assert response.status_code == 414
    assert response.headers["Content-Type"] == "application/json"
    assert "4094 bytes" in response.json()["error"]


@pytest.mark.parametrize("headers", [
    {f"X-Many-{i}": "1" for i in range(101)},
    {"X-Huge": "a" * 9000},
])
def test_too_many_or_too_large_header_fields_are_431_in_json(served: str, headers: dict[str, str]) -> None:
    response = httpx.get(f"{served}/health", headers=headers, timeout=30)
    assert response.status_code == 431
    assert response.headers["Content-Type"] == "application/json"
    assert "header fields" in response.json()["error"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_malformed_request_is_400_in_json(served: str) -> None:
    host, port = served.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nBad Header Name: x\r\n\r\n")
        answer = _read_all(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"Content-Type: application/json" in head
    assert body.startswith(b'{"error": "malformed HTTP request')


def test_a_wrong_method_is_405_with_allow_and_no_version_banner(served: str) -> None:
    response = httpx.delete(f"{served}/v1/stats?window=1m", timeout=30)
    assert response.status_code == 405
    assert response.json()["error"]
    assert "GET" in response.headers["Allow"]
    server = response.headers.get("Server", "")
    assert not any(char.isdigit() for char in server), server


class SlowClient(threading.Thread):
    """Sends a request's first line, then one header byte every TRICKLE_SECONDS until told to finish (or a
    bound), then ends the request and reads the answer."""

    def __init__(self, url: str, bound: float) -> None:
        super().__init__(daemon=True)
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=SLOW_BOUND_SECONDS + 60)
        self.local_port = self.sock.getsockname()[1]
        self.bound = bound
        self.finish = threading.Event()
        self.finished_at: float | None = None
        self.status_line = b""
        self.bytes_trickled = 0

    def run(self) -> None:
        with self.sock:
            self.sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Slow: ")
            deadline = time.monotonic() + self.bound
            while not self.finish.is_set() and time.monotonic() < deadline:
                self.sock.sendall(b"a")
                self.bytes_trickled += 1
                self.finish.wait(TRICKLE_SECONDS)
            self.finished_at = time.monotonic()
            self.sock.sendall(b"\r\nConnection: close\r\n\r\n")
            self.status_line = _read_all(self.sock).split(b"\r\n", 1)[0]


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _wait_until_workers_hold(master_pid: int, ports: set[int]) -> None:
    """Bounded wait until gunicorn's workers have accepted a connection from every one of `ports`."""
    deadline = time.monotonic() + 60
    held: set[int] = set()
    while time.monotonic() < deadline:
        held = {
            conn.raddr.port
            for worker in psutil.Process(master_pid).children()
            for conn in worker.net_connections(kind="tcp")
            if conn.raddr and conn.status == psutil.CONN_ESTABLISHED
        }
        if ports <= held:
            return
        time.sleep(0.05)
    raise AssertionError(f"the workers never accepted the slow clients {ports - held}")


def _slow_clients_then_a_normal_request(url: str, master_pid: int, bound: float) -> tuple[list[SlowClient], float]:
    slow = [SlowClient(url, bound) for _ in range(2)]
    for client in slow:
        client.start()
    _wait_until_workers_hold(master_pid, {client.local_port for client in slow})
    while min(client.bytes_trickled for client in slow) < 2:  # each is mid-request, trickling
        time.sleep(TRICKLE_SECONDS / 2)
    response = httpx.get(f"{url}/v1/stats?window=1h", timeout=SLOW_BOUND_SECONDS + 60)
    answered_at = time.monotonic()
    assert response.status_code == 200, response.text
    for client in slow:
        client.finish.set()
    for client in slow:
        client.join(SLOW_BOUND_SECONDS + 60)
    # The slow clients were served too: their connections were alive all along.
    assert [client.status_line[:12] for client in slow] == [b"HTTP/1.1 200"] * 2
    return slow, answered_at


def test_two_slow_clients_do_not_delay_a_normal_request(tmp_path: Path) -> None:
    with gunicorn(SERVED, tmp_path) as (url, master):
        slow, answered_at = _slow_clients_then_a_normal_request(url, master, SLOW_BOUND_SECONDS)
    # Answered while both slow clients were still sending their requests.
    assert all(client.finished_at is not None and client.finished_at > answered_at for client in slow)
    print(f"\nnormal request answered while 2 slow clients had trickled {[c.bytes_trickled for c in slow]} bytes")


def test_the_former_sync_workers_make_a_normal_request_wait_for_slow_clients(tmp_path: Path) -> None:
    with gunicorn(FORMER, tmp_path) as (url, master):
        slow, answered_at = _slow_clients_then_a_normal_request(url, master, FORMER_SLOW_SECONDS)
    finished = [client.finished_at for client in slow if client.finished_at is not None]
    assert finished and answered_at > min(finished)
