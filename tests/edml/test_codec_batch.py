"""The scoring hot path's codec (cavro's batch decode, the column-wise prediction encoder)
reads and writes exactly what fastavro does, on random and edge-case records."""

from __future__ import annotations

import io
import json
import random
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

import fastavro
import numpy as np
import pytest

from edml.codec import Codec
from edml.contracts import TripRequest
from edml.errors import DecodeError, RegistryUnavailable
from edml.raw_decode import encoded_sizes
from tests.edml.test_codec import CORRUPT

_INT = (-2**31, 2**31 - 1)
_EPOCH = datetime(1970, 1, 1)
_MS = timedelta(milliseconds=1)
_TEXTS = ["", "trip-1", "é" * 70, "\U0001f695 taxi", "x" * 200, "\x00nul", "日本語"]


def _requests(count: int, seed: int) -> list[dict[str, Any]]:
    """Random requests, every field at its edges now and then: nulls, extreme ints, long
    and non-ASCII trip ids, timestamps far from today, doubles that are not numbers."""
    rng = random.Random(seed)

    def integer() -> int:
        return rng.choice([rng.randint(*_INT), rng.choice(_INT), 0, -1, 63, 64, -64, -65,
                           rng.randint(1, 265)])

    return [{
        "trip_id": rng.choice([rng.choice(_TEXTS), f"trip-{rng.getrandbits(64):x}"]),
        "pickup_datetime": _EPOCH + rng.choice(
            [rng.randint(-2**40, 2**45), 0, -1, 1_577_836_800_000]) * _MS,
        "pickup_zone_id": integer(), "dropoff_zone_id": integer(),
        "passenger_count": integer(),
        "vendor_id": rng.choice([None, integer()]),
        "estimated_distance_miles": rng.choice(
            [None, rng.uniform(-1e6, 1e6), 0.0, -0.0, float("inf"), 1e-310]),
    } for _ in range(count)]


def _as_avro_values(record: dict[str, Any]) -> dict[str, Any]:
    """A record as decode_record gives it, its timestamps back to their longs."""
    return {name: (value - _EPOCH) // _MS if isinstance(value, datetime) else value
            for name, value in record.items()}


def test_a_batch_decodes_to_what_fastavro_decodes_record_by_record() -> None:
    codec = Codec()
    messages = [codec.encode_record("edml.TripRequest", r) for r in _requests(2000, 1)]
    batch = codec.decode_batch(messages, "edml.TripRequest")
    assert batch == [_as_avro_values(codec.decode_record(m, "edml.TripRequest"))
                     for m in messages]


@CORRUPT
def test_a_corrupt_message_in_a_batch_is_its_own_error_and_the_rest_decode(
        mangle: Any, reason: str) -> None:
    codec = Codec()
    good = codec.encode(TripRequest("trip-1", datetime(2020, 3, 1, 8), 132, 48, 1))
    first, bad, last = codec.decode_batch([good, mangle(good), good], "edml.TripRequest")
    assert first == last == _as_avro_values(codec.decode_record(good, "edml.TripRequest"))
    assert isinstance(bad, DecodeError) and reason in str(bad)


def test_every_random_byte_string_is_a_decode_error_never_a_crash() -> None:
    codec, rng = Codec(), random.Random(7)
    header = codec.encode(TripRequest("t", datetime(2020, 1, 1), 1, 1, 1))[:10]
    noise = [header + rng.randbytes(rng.randint(0, 40)) for _ in range(5000)]
    for message, decoded in zip(noise, codec.decode_batch(noise, "edml.TripRequest"),
                                strict=True):
        try:
            expected: Any = _as_avro_values(codec.decode_record(message, "edml.TripRequest"))
        except DecodeError:
            expected = DecodeError
        # the same verdict as fastavro's: a record where it reads one, an error where not
        assert (type(decoded) if isinstance(decoded, DecodeError) else decoded) == expected


class _Registry:
    def __init__(self) -> None:
        self.schemas: list[str] = []
        self.down = False

    def register(self, subject: str, schema: str) -> int:
        if schema not in self.schemas:
            self.schemas.append(schema)
        return self.schemas.index(schema) + 1

    def schema(self, schema_id: int) -> str:
        if self.down:
            raise RegistryUnavailable("registry down")
        return self.schemas[schema_id - 1]


def _request_v2() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        resources.files("edml.schemas").joinpath("TripRequest.avsc").read_text())
    schema["fields"].append({"name": "wheelchair", "type": ["null", "boolean"],
                             "default": None})
    return schema


def test_a_newer_writer_through_the_registry_is_read_as_our_schema() -> None:
    registry = _Registry()
    newer = Codec({"edml.TripRequest": fastavro.parse_schema(_request_v2())}, registry)
    records = _requests(50, 2)
    messages = [newer.encode_record("edml.TripRequest", {**r, "wheelchair": True})
                for r in records]
    reader = Codec(registry=registry)
    assert reader.decode_batch(messages, "edml.TripRequest") == [
        _as_avro_values(reader.decode_record(m, "edml.TripRequest")) for m in messages]


def test_a_registry_that_cannot_answer_is_raised_and_no_message_is_blamed() -> None:
    registry = _Registry()
    message = Codec(registry=registry).encode(TripRequest("t", datetime(2020, 1, 1), 1, 1, 1))
    registry.down = True
    with pytest.raises(RegistryUnavailable):
        Codec(registry=registry).decode_batch([message], "edml.TripRequest")


@pytest.mark.parametrize("registry", [None, "registry"])
def test_predictions_encoded_column_wise_are_fastavros_bytes(registry: str | None) -> None:
    codec = Codec(registry=_Registry() if registry else None)
    rng = random.Random(3)
    count = 3000
    trip_ids = [rng.choice([*_TEXTS, f"trip-{i}"]) for i in range(count)]
    seconds = np.array([rng.choice([rng.uniform(0, 1e4), -1.5e300, float("inf"),
                                    float("-inf"), 0.0, 5e-324]) for _ in range(count)])
    requested = np.array([rng.choice([rng.randint(-2**63, 2**63 - 1), 0, -1, 63, 64, -64,
                                      -65, 1_764_000_000_000]) for _ in range(count)],
                         dtype=np.int64)
    predicted_ms = 1_764_000_000_456
    encoded = codec.prediction_writer("trip-duration", predicted_ms).encode_many(
        trip_ids, "0.1.0-20261201-abc1234", seconds, requested)
    assert encoded == [codec.encode_record("edml.TripPrediction", {
        "trip_id": trip_id, "predicted_duration_seconds": s,
        "model_name": "trip-duration", "model_version": "0.1.0-20261201-abc1234",
        "requested_at": r, "predicted_at": predicted_ms})
        for trip_id, s, r in zip(trip_ids, seconds.tolist(), requested.tolist(), strict=True)]
    keyed = codec.prediction_writer("trip-duration", predicted_ms).encode_many(
        trip_ids[:50], "v3", seconds[:50], requested[:50], model_key="132", fallback=True)
    assert keyed == [codec.encode_record("edml.TripPrediction", {
        "trip_id": trip_id, "predicted_duration_seconds": s, "model_name": "trip-duration",
        "model_version": "v3", "requested_at": r, "predicted_at": predicted_ms,
        "model_key": "132", "fallback": True})
        for trip_id, s, r in zip(trip_ids[:50], seconds[:50].tolist(),
                                 requested[:50].tolist(), strict=True)]


@pytest.mark.parametrize("registry", [None, "registry"])
def test_a_batchs_big_records_encoded_by_cavro_are_fastavros_bytes(registry: str | None
                                                                   ) -> None:
    codec = Codec(registry=_Registry() if registry else None)
    rng = random.Random(5)
    count = 2000
    shadow = {"model_name": "trip-duration", "model_version": "v8 ünï",
              "predicted_at": 1_764_000_000_456,
              "trip_ids": [rng.choice([*_TEXTS, f"trip-{i}"]) for i in range(count)],
              "predicted_duration_seconds": [rng.choice([rng.uniform(0, 1e4), float("inf"),
                                                         -0.0, 5e-324]) for _ in range(count)],
              "requested_at": [rng.choice([rng.randint(-2**63, 2**63 - 1), 0, -1, 64])
                               for _ in range(count)]}
    changes = {"changes": [{"key": b"p:" + rng.randbytes(rng.randint(0, 90)),
                            "value": rng.choice([None, b"", rng.randbytes(40)])}
                           for _ in range(count)]}
    for name, record in (("edml.ShadowPredictions", shadow), ("edml.JoinChanges", changes)):
        assert codec.encode_raw(name, record) == codec.encode_record(name, record), name


def test_the_size_of_each_record_is_computed_exactly_from_what_was_read() -> None:
    codec = Codec()
    records = _requests(3000, 4)
    bodies = [codec.encode_record("edml.TripRequest", r)[10:] for r in records]
    sizes = encoded_sizes(codec.schemas["edml.TripRequest"])
    assert sizes is not None
    assert sizes([_as_avro_values(r) for r in records]).tolist() == [len(b) for b in bodies]


@pytest.mark.parametrize("seed", range(5))
def test_one_corrupt_message_anywhere_in_a_batch_leaves_every_other_record_intact(
        seed: int) -> None:
    codec, rng = Codec(), random.Random(seed)
    messages = [codec.encode_record("edml.TripRequest", r) for r in _requests(500, seed)]
    expected: list[Any] = [codec.decode_batch([m], "edml.TripRequest")[0] for m in messages]
    bad = rng.randrange(len(messages))
    messages[bad] = rng.choice([lambda d: d[:-1], lambda d: d + b"\x00",
                                lambda d: d[:10] + rng.randbytes(len(d) - 10)])(messages[bad])
    decoded = codec.decode_batch(messages, "edml.TripRequest")
    assert decoded[:bad] == expected[:bad] and decoded[bad + 1:] == expected[bad + 1:]
    try:
        alone: Any = _as_avro_values(codec.decode_record(messages[bad], "edml.TripRequest"))
    except DecodeError:
        alone = DecodeError
    assert (type(decoded[bad]) if isinstance(decoded[bad], DecodeError)
            else decoded[bad]) == alone


def test_faults_that_cancel_out_in_length_are_each_still_caught() -> None:
    codec = Codec()
    one, two, three = (codec.encode(TripRequest(f"trip-{i}", datetime(2020, 1, 1), 1, 2, 1))
                       for i in range(3))
    # a byte too many on one, a byte too few on the next: the batch's length is right
    batch = codec.decode_batch([one + b"\x00", two[:-1], three], "edml.TripRequest")
    assert [type(r) for r in batch[:2]] == [DecodeError, DecodeError]
    assert batch[2] == _as_avro_values(codec.decode_record(three, "edml.TripRequest"))


def test_a_value_written_with_a_longer_varint_than_needed_is_read_as_written() -> None:
    codec = Codec()
    message = codec.encode(TripRequest("trip-1", datetime(2020, 1, 1), 1, 2, 1))
    body = fastavro.schemaless_reader(io.BytesIO(message[10:]),
                                      codec.schemas["edml.TripRequest"], None)
    # passenger_count 1 as two bytes (0x82 0x00): legal to read, never written so
    at = message.rindex(b"\x02\x00\x00")  # passengers 1, then the two nulls
    padded = message[:at] + b"\x82\x00" + message[at + 1:]
    assert codec.decode_record(padded, "edml.TripRequest") == body
    assert codec.decode_batch([message, padded], "edml.TripRequest") == [
        _as_avro_values(body), _as_avro_values(body)]
