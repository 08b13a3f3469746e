"""The Avro contracts and their framing, without a broker."""

from __future__ import annotations

import copy
import dataclasses
import json
import struct
from datetime import datetime
from importlib import resources
from typing import Any

import fastavro
import numpy as np
import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form

from edml import contracts
from edml.codec import Codec, load_schemas
from edml.contracts import ModelMetadata, TripRequest
from edml.errors import DecodeError, EncodeError
from edml.samples import sample_events

REQUEST = TripRequest("trip-9", datetime(2019, 10, 1, 17, 5), 132, 48, 2)


def test_every_avsc_file_parses_with_fastavro() -> None:
    files = [e for e in resources.files("edml.schemas").iterdir() if e.name.endswith(".avsc")]
    assert len(files) == 11
    for entry in files:
        fastavro.parse_schema(json.loads(entry.read_text()))


@pytest.mark.parametrize("cls", [contracts.TripRequest, contracts.TripPrediction,
                                 contracts.TripCompleted, contracts.ModelKey,
                                 contracts.ModelMetadata, contracts.DeadLetter,
                                 contracts.ModelEvent, contracts.RolloutEvidence])
def test_each_dataclass_has_exactly_the_fields_of_its_schema(cls: type[Any]) -> None:
    schema = load_schemas()[cls.SCHEMA]
    assert {f["name"] for f in schema["fields"]} == {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize(("value", "key"), sample_events(), ids=lambda v: type(v).__name__)
def test_each_contract_round_trips_through_the_codec(value: Any, key: Any) -> None:
    codec = Codec()
    assert codec.decode(codec.encode(value), type(value)) == value


def test_single_object_header_is_magic_then_the_spec_fingerprint() -> None:
    data = Codec().encode(REQUEST)
    schema = load_schemas()["edml.TripRequest"]
    expected = fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")
    assert data[:2] == b"\xc3\x01"
    assert data[2:10].hex() == expected  # fastavro's independent CRC-64-AVRO


# every way a message can be wrong, and what its DecodeError says
CORRUPT = pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda d: b"", "neither single-object"),
        (lambda d: b"{\"trip_id\": 1}", "neither single-object"),
        (lambda d: d[:2] + b"\xff" * 8 + d[10:], "unknown writer schema"),
        (lambda d: d[:12], "corrupt edml.TripRequest body"),
        (lambda d: d + b"\x00", "trailing bytes"),
        (lambda d: d[:10] + b"\x04\xff\xfe" + d[17:], "corrupt edml.TripRequest body"),
        (lambda d: b"\x00\x00\x00\x00\x07" + d[10:], "no registry is configured"),
    ],
    ids=["empty", "json", "unknown-fingerprint", "truncated", "trailing", "not-utf8",
         "registry-framed"],
)


@CORRUPT
def test_a_corrupt_message_raises_decode_error(mangle: Any, reason: str) -> None:
    codec = Codec()
    with pytest.raises(DecodeError, match=reason):
        codec.decode(mangle(codec.encode(REQUEST)), TripRequest)


def test_a_message_of_another_schema_is_refused() -> None:
    codec = Codec()
    metadata = next(v for v, _ in sample_events() if isinstance(v, ModelMetadata))
    with pytest.raises(DecodeError, match=r"expected a edml\.TripRequest message, got "
                                          r"edml\.ModelMetadata"):
        codec.decode(codec.encode(metadata), TripRequest)


def test_a_value_that_does_not_fit_raises_encode_error() -> None:
    with pytest.raises(EncodeError, match=r"edml\.TripRequest"):
        Codec().encode(dataclasses.replace(REQUEST, pickup_zone_id="JFK"))  # type: ignore[arg-type]


def _request_v2() -> dict[str, Any]:
    """TripRequest as a later release might write it: one optional field added."""
    schema = copy.deepcopy(json.loads(
        resources.files("edml.schemas").joinpath("TripRequest.avsc").read_text()))
    schema["fields"].append({"name": "wheelchair", "type": ["null", "boolean"],
                             "default": None})
    return schema


def test_an_old_reader_reads_a_new_writers_message() -> None:
    new_writer = Codec({"edml.TripRequest": fastavro.parse_schema(_request_v2())})
    data = new_writer.encode_record(
        "edml.TripRequest", {**REQUEST.to_avro(), "wheelchair": True})
    old_reader = Codec()
    old_reader.add_writer_schema(_request_v2())  # what a registry lookup gives a reader
    assert old_reader.decode(data, TripRequest) == REQUEST


def test_a_new_reader_reads_an_old_writers_message_with_the_default() -> None:
    data = Codec().encode(REQUEST)
    new_reader = Codec({"edml.TripRequest": fastavro.parse_schema(_request_v2())})
    new_reader.add_writer_schema(load_schemas()["edml.TripRequest"])
    assert new_reader.decode_record(data, "edml.TripRequest")["wheelchair"] is None


def _rollout_state() -> ModelMetadata:
    return next(v for v, _ in sample_events()
                if isinstance(v, ModelMetadata) and v.rollout is not None)


def _model_metadata_v1() -> dict[str, Any]:
    return json.loads(resources.files("edml.schemas").joinpath(
        "history/ModelMetadata.v1.avsc").read_text())


def test_a_reader_of_the_v1_model_schema_sees_the_champion_of_a_rollout_state() -> None:
    state = _rollout_state()
    data = Codec().encode(state)
    old_reader = Codec({"edml.ModelMetadata": fastavro.parse_schema(_model_metadata_v1())})
    old_reader.add_writer_schema(load_schemas()["edml.ModelMetadata"])  # a deploy, or registry
    champion = old_reader.decode_record(data, "edml.ModelMetadata")
    assert (champion["version"], champion["checksum"]) == (state.version, state.checksum)
    assert "rollout" not in champion


def test_a_v1_model_event_reads_as_a_champion_with_no_rollout() -> None:
    state = _rollout_state()
    v1 = Codec({"edml.ModelMetadata": fastavro.parse_schema(_model_metadata_v1())})
    data = v1.encode_record("edml.ModelMetadata", state.version_only().to_avro()
                            | {"rollout_state": None})
    read = Codec().decode(data, ModelMetadata)  # today's reader knows v1 from avro/history
    assert read == dataclasses.replace(state, rollout=None, previous=None, changed_by=None)


class MemoryRegistry:
    """A registry in memory, with the two calls the codec uses."""

    def __init__(self) -> None:
        self.schemas: list[str] = []

    def register(self, subject: str, schema: str) -> int:
        if schema not in self.schemas:
            self.schemas.append(schema)
        return self.schemas.index(schema) + 1

    def schema(self, schema_id: int) -> str:
        return self.schemas[schema_id - 1]


def test_with_a_registry_messages_use_the_confluent_framing() -> None:
    registry = MemoryRegistry()
    data = Codec(registry=registry).encode(REQUEST)
    assert data[:1] == b"\x00"
    (schema_id,) = struct.unpack(">I", data[1:5])
    assert json.loads(registry.schema(schema_id))["name"] == "edml.TripRequest"
    assert Codec(registry=registry).decode(data, TripRequest) == REQUEST


def test_through_a_registry_an_old_reader_reads_a_new_writer_unaided() -> None:
    registry = MemoryRegistry()
    new_writer = Codec({"edml.TripRequest": fastavro.parse_schema(_request_v2())}, registry)
    data = new_writer.encode_record("edml.TripRequest", {**REQUEST.to_avro(),
                                                         "wheelchair": False})
    assert Codec(registry=registry).decode(data, TripRequest) == REQUEST


@pytest.mark.parametrize("registry", [None, "registry"])
def test_the_fast_prediction_writer_writes_fastavros_bytes(registry: str | None) -> None:
    codec = Codec(registry=MemoryRegistry() if registry else None)
    for trip_id, seconds, requested, predicted, key, fallback in [
        ("trip-1", 712.5, 1_700_000_000_123, 1_700_000_000_456, None, False),
        ("", 0.0, 0, 0, "132", False), ("é" * 70, -1.5e300, -1, 2**62, None, True),
        ("t" * 200, float("inf"), 63, 64, "staten-island", False),
        ("x" * 63, 1.0, -64, -65, "", True),
    ]:
        expected = codec.encode_record("edml.TripPrediction", {
            "trip_id": trip_id, "predicted_duration_seconds": seconds,
            "model_name": "trip-duration", "model_version": "0.1.0-20261125-abc1234",
            "requested_at": requested, "predicted_at": predicted, "model_key": key,
            "fallback": fallback})
        write = codec.prediction_writer("trip-duration", predicted)
        assert write.encode(trip_id, "0.1.0-20261125-abc1234", seconds,
                            requested, key, fallback) == expected


@pytest.mark.parametrize("registry", [None, "registry"])
def test_the_hand_written_join_changes_are_fastavros_bytes(registry: str | None) -> None:
    codec = Codec(registry=MemoryRegistry() if registry else None)
    edge = [b"", b"p:" + "é".encode() * 40, b"a:" + bytes(range(256)) * 40, b"k" * 63, b"k" * 64]
    for keys, values in [
        ([], []),
        ([b"p:trip-1"], [None]),
        (edge, [b"", None, b"\x01" + bytes(10_000), b"v" * 63, b"v" * 64]),
        ([b"p:%d" % i for i in range(1000)], [b"%f" % (i / 7) for i in range(1000)]),
        # keys of one length and values of one length: laid out as a table
        ([b"p:%036d" % i for i in range(1000)], [struct.pack("<d", i / 7) for i in range(1000)]),
        ([b"p:%036d" % i for i in range(3)], [b"v", None, b"w"]),
        ([b"k" * 64] * 2, [b"v"] * 2), ([b"k"] * 2, [b"v" * 64] * 2), ([b""], [b""]),
    ]:
        expected = codec.encode_record("edml.JoinChanges", {"changes": [
            {"key": key, "value": value} for key, value in zip(keys, values, strict=True)]})
        assert codec.encode_join_changes(keys, values) == expected


def _with_a_worker_field(name: str) -> Codec:
    """A codec whose schema ``name`` has grown a field."""
    schema = copy.deepcopy(json.loads(
        resources.files("avro").joinpath(f"{name}.avsc").read_text()))
    schema["fields"].append({"name": "worker", "type": "string", "default": "w0"})
    return Codec({f"edml.{name}": fastavro.parse_schema(schema)})


def test_the_hand_written_encoders_leave_a_changed_schema_to_the_schema() -> None:
    codec = _with_a_worker_field("JoinChanges")
    data = codec.encode_join_changes([b"p:a"], [b"x"])
    assert codec.decode_record(data, "edml.JoinChanges") == {
        "changes": [{"key": b"p:a", "value": b"x"}], "worker": "w0"}
    codec = _with_a_worker_field("ShadowPredictions")
    data = codec.encode_shadow_predictions("trips", "v2", 1_764_000_000_123, ["a"],
                                           np.array([600.0]), np.array([1_764_000_000_000]))
    assert codec.decode_record(data, "edml.ShadowPredictions")["worker"] == "w0"


@pytest.mark.parametrize("registry", [None, "registry"])
def test_the_hand_written_shadow_predictions_are_fastavros_bytes(registry: str | None) -> None:
    codec = Codec(registry=MemoryRegistry() if registry else None)
    rng = np.random.default_rng(7)
    uuids = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(500)]
    for trip_ids, key in [
        ([], None),
        (uuids, None),  # ids of one length: laid out as a table
        ([*uuids[:3], "", "é" * 40, "t" * 63, "t" * 64, "ü"], "132"),
        (["x" * 200] * 2, ""),
    ]:
        seconds = rng.uniform(-1e300, 1e300, len(trip_ids))
        requested = rng.integers(-2**62, 2**62, len(trip_ids))
        if len(trip_ids) > 4:
            seconds[:2] = [float("inf"), 0.0]
            requested[:6] = [0, -1, 63, 64, -2**63, 2**63 - 1]  # one byte .. ten
        expected = codec.encode_record("edml.ShadowPredictions", {
            "model_name": "trip-duration", "model_version": "0.1.0-20261125-abc1234",
            "predicted_at": 1_764_000_000_123, "trip_ids": trip_ids,
            "predicted_duration_seconds": seconds.tolist(),
            "requested_at": requested.tolist(), "model_key": key})
        assert codec.encode_shadow_predictions(
            "trip-duration", "0.1.0-20261125-abc1234", 1_764_000_000_123, trip_ids, seconds,
            requested, key) == expected
