"""A schema registry on loopback that speaks the part of the Confluent REST API edml uses
(register a subject's schema, fetch a schema by id), and fails on demand: ``mode`` is
"ok", "error" (HTTP 500) or "slow" (answers after ``slow_s``)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeRegistry", "running_registry"]


class FakeRegistry:
    def __init__(self) -> None:
        self.schemas: list[str] = []
        self.mode = "ok"
        self.slow_s = 10.0
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        self.url = ""


def _handler(registry: FakeRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _fault(self) -> bool:
            registry.requests.append((self.command, self.path,
                                      self.headers.get("Authorization")))
            if registry.mode == "slow":
                time.sleep(registry.slow_s)
            if registry.mode == "error":
                self._reply(500, {"error_code": 50001, "message": "store unavailable"})
                return True
            return False

        def do_POST(self) -> None:  # /subjects/{subject}/versions
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self._fault():
                return
            if body["schema"] not in registry.schemas:
                registry.schemas.append(body["schema"])
            self._reply(200, {"id": registry.schemas.index(body["schema"]) + 1})

        def do_GET(self) -> None:  # /schemas/ids/{id}
            if self._fault():
                return
            schema_id = int(self.path.split("?")[0].rsplit("/", 1)[1])
            if not 1 <= schema_id <= len(registry.schemas):
                self._reply(404, {"error_code": 40403, "message": "Schema not found"})
                return
            self._reply(200, {"schema": registry.schemas[schema_id - 1]})

        def _reply(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def running_registry() -> Iterator[FakeRegistry]:
    registry = FakeRegistry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(registry))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    registry.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield registry
    finally:
        registry.mode = "ok"
        server.shutdown()
        server.server_close()
