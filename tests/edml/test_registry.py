"""The schema registry through confluent-kafka's client, against a registry speaking the
Confluent REST API on loopback that answers, fails, or hangs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from pydantic import SecretStr

from edml.codec import Codec
from edml.contracts import TripRequest
from edml.errors import DecodeError, RegistryUnavailable
from edml.local.processes import free_port
from edml.settings import RegistrySettings
from tests.registry_server import FakeRegistry, running_registry

REQUEST = TripRequest("t", datetime(2019, 1, 1, 9), 1, 2, 1)


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with running_registry() as running:
        yield running


def _codec(url: str, **settings: object) -> Codec:
    return Codec.from_settings(RegistrySettings(url=url, timeout_s=1.0, **settings))  # type: ignore[arg-type]


def test_messages_written_through_a_registry_decode_through_another_client(
    registry: FakeRegistry,
) -> None:
    data = _codec(registry.url).encode(REQUEST)
    assert data[:5] == b"\x00\x00\x00\x00\x01"
    assert _codec(registry.url).decode(data, TripRequest) == REQUEST


def test_credentials_go_as_basic_auth(registry: FakeRegistry) -> None:
    _codec(registry.url, username="svc", password=SecretStr("s3cret")).encode(REQUEST)
    assert registry.requests[0][2] == "Basic c3ZjOnMzY3JldA=="


@pytest.mark.parametrize("mode", ["error", "slow"])
def test_a_failing_or_hanging_registry_is_unavailable_not_a_bad_message(
    mode: str, registry: FakeRegistry,
) -> None:
    data = _codec(registry.url).encode(REQUEST)
    reader = _codec(registry.url)
    registry.mode, registry.slow_s = mode, 3.0
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable, match="schema registry"):
        reader.decode(data, TripRequest)
    assert time.monotonic() - started < 2.9  # the 1 s timeout bounds it, not the registry
    registry.mode = "ok"  # a failed lookup is not remembered: the next one succeeds
    assert reader.decode(data, TripRequest) == REQUEST


def test_an_unreachable_registry_is_unavailable() -> None:
    with pytest.raises(RegistryUnavailable, match=r"registering edml\.TripRequest"):
        _codec(f"http://127.0.0.1:{free_port()}").encode(REQUEST)


def test_a_schema_id_the_registry_does_not_know_is_a_bad_message(
    registry: FakeRegistry,
) -> None:
    data = _codec(registry.url).encode(REQUEST)
    with pytest.raises(DecodeError, match="schema id 7 is unknown"):
        _codec(registry.url).decode(b"\x00\x00\x00\x00\x07" + data[5:], TripRequest)
