"""A small HTTP proxy in front of moto's DynamoDB that injects DynamoDB's own error answers: a
`ProvisionedThroughputExceededException` for the requests that touch chosen tables, for as long as the test says
(`throttle`), and a `ValidationException` for every item write (`PutItem`, or `BatchWriteItem`, which DynamoDB
refuses whole for one bad item) to a chosen table whose body names a chosen text (`refuse_items_naming`: the
permanent refusal of an item DynamoDB will never take). Everything else passes
through, so the KCL's own lease tables keep working while the pipeline's tables fail."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler

import httpx

from tests.quiet_http import QuietThreadingHTTPServer


class DynamoDBFaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.throttled = 0
        self.refused = 0
        self._refused_text: bytes | None = None
        self._refused_table = b""
        self._tables: frozenset[str] = frozenset()
        self._until = 0.0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fault = proxy._fault(body, self.headers.get("X-Amz-Target", ""))
                if fault is not None:
                    self._answer(400, json.dumps({"__type": fault[0], "message": fault[1]}).encode(),
                                 {"Content-Type": "application/x-amz-json-1.0"})
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                response = httpx.post(proxy.upstream + self.path, content=body, headers=headers, timeout=30)
                self._answer(response.status_code, response.content, {
                    k: v for k, v in response.headers.items()
                    if k.lower() not in ("content-length", "connection", "transfer-encoding", "content-encoding")
                })

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = QuietThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> DynamoDBFaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def throttle(self, tables: set[str], seconds: float) -> None:
        with self._lock:
            self._tables = frozenset(tables)
            self._until = time.monotonic() + seconds

    def refuse_items_naming(self, text: str, table: str) -> None:
        with self._lock:
            self._refused_text = text.encode()
            self._refused_table = json.dumps(table).encode()

    def _fault(self, body: bytes, target: str) -> tuple[str, str] | None:
        """The error type and message to answer instead of moto's, or None to pass the request through."""
        with self._lock:
            if (self._refused_text is not None and self._refused_text in body and self._refused_table in body
                    and target.endswith(("PutItem", "BatchWriteItem"))):
                self.refused += 1
                return ("com.amazon.coral.validate#ValidationException",
                        "Item size has exceeded the maximum allowed size (injected by the test's fault proxy)")
        if self._should_throttle(body):
            return ("com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                    "injected by the test's fault proxy")
        return None

    def _should_throttle(self, body: bytes) -> bool:
        with self._lock:
            if time.monotonic() >= self._until or not self._tables:
                return False
            try:
                request = json.loads(body or b"{}")
            except ValueError:
                return False
            named = {request.get("TableName")} | set(request.get("RequestItems", {}))
            if named & self._tables:
                self.throttled += 1
                return True
            return False
