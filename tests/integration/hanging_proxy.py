"""A TCP proxy in front of a real service (DynamoDB's moto, redis-server) that relays bytes until the test calls
`hang()`; from then on it keeps accepting connections and reading what clients send, and never answers: the
fault of a dependency that is up but stuck. `held` counts the requests it swallowed, so a test can prove the
fault happened."""

from __future__ import annotations

import contextlib
import socket
import threading


class HangingProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._hanging = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.held = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, name="hanging-proxy", daemon=True)

    def __enter__(self) -> HangingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def hang(self) -> None:
        self._hanging.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        if not self._hanging.is_set():
            with contextlib.suppress(OSError):
                upstream = socket.create_connection(self._upstream, timeout=5)
                upstream.settimeout(None)
                self._track(upstream)
                threading.Thread(target=self._relay_back, args=(upstream, client), daemon=True).start()
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                return
            if not data:
                return
            if self._hanging.is_set() or upstream is None:
                with self._lock:
                    self.held += 1
                continue
            with contextlib.suppress(OSError):
                upstream.sendall(data)

    def _relay_back(self, upstream: socket.socket, client: socket.socket) -> None:
        while True:
            try:
                data = upstream.recv(65536)
            except OSError:
                return
            if not data or self._hanging.is_set():
                # Answers that arrive after the hang started are swallowed too.
                if not data:
                    return
                continue
            with contextlib.suppress(OSError):
                client.sendall(data)
