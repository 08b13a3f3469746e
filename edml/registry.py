"""A minimal client for a Confluent-compatible schema registry (two REST calls, stdlib only)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from edml.errors import BrokerError

__all__ = ["HttpSchemaRegistry"]


class HttpSchemaRegistry:
    """Registers and fetches Avro schemas; satisfies ``edml.codec.SchemaRegistry``."""

    def __init__(
        self, url: str, username: str | None = None, password: str | None = None,
        timeout: float = 10.0,  # seconds per request
    ) -> None:
        self._url = url.rstrip("/")
        self._timeout = timeout
        self._headers = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            self._url + path,
            data=None if body is None else json.dumps(body).encode(),
            headers=self._headers,
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return json.load(response)
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
            raise BrokerError(f"schema registry {self._url}{path}: {exc}") from exc

    def register(self, subject: str, schema: str) -> int:
        quoted = urllib.parse.quote(subject, safe="")
        return int(self._call("POST", f"/subjects/{quoted}/versions", {"schema": schema})["id"])

    def schema(self, schema_id: int) -> str:
        return str(self._call("GET", f"/schemas/ids/{schema_id}")["schema"])
