"""The schema registry client against a registry speaking the Confluent REST API on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from edml.codec import Codec
from edml.contracts import TripRequest
from edml.errors import BrokerError
from edml.local.processes import free_port
from edml.registry import HttpSchemaRegistry


class _Registry(BaseHTTPRequestHandler):
    schemas: list[str] = []  # noqa: RUF012  (shared by the server's handler instances)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body["schema"] not in self.schemas:
            self.schemas.append(body["schema"])
        self._reply({"id": self.schemas.index(body["schema"]) + 1})

    def do_GET(self) -> None:
        self._reply({"schema": self.schemas[int(self.path.rsplit("/", 1)[1]) - 1]})

    def _reply(self, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def registry_url() -> Iterator[str]:
    _Registry.schemas = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_messages_written_through_a_registry_decode_through_another_client(
    registry_url: str,
) -> None:
    request = TripRequest("t", datetime(2019, 1, 1, 9), 1, 2, 1)
    data = Codec(registry=HttpSchemaRegistry(registry_url)).encode(request)
    assert data[:5] == b"\x00\x00\x00\x00\x01"
    assert Codec(registry=HttpSchemaRegistry(registry_url)).decode(data, TripRequest) == request


def test_an_unreachable_registry_is_a_broker_error() -> None:
    registry = HttpSchemaRegistry(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(BrokerError, match="schema registry"):
        registry.register("edml.TripRequest", "{}")
