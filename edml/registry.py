"""A Confluent-compatible schema registry, through confluent-kafka's own client (caching,
basic auth, TLS), reduced to the two calls the codec makes, with its failures sorted:

* the registry away, timing out or failing (5xx, auth): ``RegistryUnavailable``, the
  world's fault; the scoring loop waits and retries, and no record becomes a dead letter;
* an id the registry does not know (404): ``DecodeError``, the message's fault;
* a schema the registry refuses (409/422, incompatible): ``EncodeError``.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from edml.errors import DecodeError, EncodeError, RegistryUnavailable
from edml.settings import RegistrySettings

__all__ = ["ConfluentRegistry"]

_NOT_FOUND = 404
_REFUSED = (409, 422)  # incompatible, or invalid


class ConfluentRegistry:
    """Satisfies ``edml.codec.SchemaRegistry``; successful answers are cached by the client
    (an id's schema never changes), failures are not, and are retried by the caller."""

    def __init__(self, settings: RegistrySettings) -> None:
        assert settings.url is not None
        self._url = settings.url
        conf: dict[str, Any] = {
            "url": settings.url,
            "timeout": settings.timeout_s,
            "max.retries": 0,  # one retry layer: the caller's, with its backoff and alarm
        }
        if settings.username is not None:
            password = settings.password.get_secret_value() if settings.password else ""
            conf["basic.auth.user.info"] = f"{settings.username}:{password}"
        if settings.ssl_ca_location is not None:
            conf["ssl.ca.location"] = settings.ssl_ca_location
        self._client = SchemaRegistryClient(conf)

    def register(self, subject: str, schema: str) -> int:
        try:
            return int(self._client.register_schema(subject, Schema(schema, "AVRO")))
        except SchemaRegistryError as exc:
            if exc.http_status_code in _REFUSED:
                raise EncodeError(f"schema registry {self._url} refuses {subject}: "
                                  f"{exc.error_message}") from exc
            raise self._unavailable(exc, f"registering {subject}") from exc
        except Exception as exc:  # httpx transport errors: refused, timed out, TLS
            raise self._unavailable(exc, f"registering {subject}") from exc

    def schema(self, schema_id: int) -> str:
        try:
            return str(self._client.get_schema(schema_id).schema_str)
        except SchemaRegistryError as exc:
            if exc.http_status_code == _NOT_FOUND:
                raise DecodeError(f"schema id {schema_id} is unknown to the registry "
                                  f"{self._url}") from exc
            raise self._unavailable(exc, f"schema id {schema_id}") from exc
        except Exception as exc:  # httpx transport errors: refused, timed out, TLS
            raise self._unavailable(exc, f"schema id {schema_id}") from exc

    def _unavailable(self, exc: Exception, what: str) -> RegistryUnavailable:
        return RegistryUnavailable(f"schema registry {self._url}, {what}: "
                                   f"{type(exc).__name__}: {exc}")
