"""A micro-batch: every record gets exactly one outcome, in one model call."""

from __future__ import annotations

from datetime import datetime

from edml.codec import Codec
from edml.contracts import DeadLetter, TripPrediction, TripRequest
from services.batch import score_batch
from tests.services.fakes import DistanceModel, FakeMessage

CODEC = Codec()
NOW_MS = 1_700_000_000_500


def _request(i: int, pickup: int = 100, dropoff: int = 110, passengers: int = 1) -> FakeMessage:
    value = CODEC.encode(TripRequest(f"trip-{i}", datetime(2019, 10, 1, 8, 0), pickup, dropoff,
                                     passengers))
    return FakeMessage(value, f"trip-{i}".encode(), _offset=i)


def _score(messages: list[FakeMessage], model: DistanceModel | None = None):  # type: ignore[no-untyped-def]
    return score_batch(messages, model or DistanceModel(), "trips", "v7", CODEC, NOW_MS)


def test_valid_requests_are_scored_in_one_call_and_stamped_with_the_version() -> None:
    model = DistanceModel()
    result = _score([_request(i) for i in range(50)], model)
    assert model.calls == 1 and not result.dead_letters
    first = CODEC.decode(result.predictions[0].value, TripPrediction)
    assert first.trip_id == "trip-0" and first.predicted_duration_seconds == 900.0
    assert (first.model_name, first.model_version) == ("trips", "v7")
    assert int(first.requested_at.timestamp() * 1000) == 1_700_000_000_000
    assert int(first.predicted_at.timestamp() * 1000) == NOW_MS
    assert result.predictions[0].key == b"trip-0"


def test_undecodable_record_goes_to_dead_letters_with_its_bytes_and_offset() -> None:
    garbage = FakeMessage(b"\x00\x01not avro", b"k", _partition=3, _offset=42)
    result = _score([_request(1), garbage])
    assert len(result.predictions) == 1 and len(result.dead_letters) == 1
    letter = CODEC.decode(result.dead_letters[0].value, DeadLetter)
    assert (letter.key, letter.value) == (b"k", b"\x00\x01not avro")
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == \
        ("records", 3, 42)
    assert (letter.stage, letter.error_kind) == ("decode", "DecodeError")


def test_a_zone_outside_the_tlc_range_is_a_convert_dead_letter() -> None:
    result = _score([_request(1, pickup=999)])
    letter = CODEC.decode(result.dead_letters[0].value, DeadLetter)
    assert (letter.stage, letter.error_kind) == ("convert", "InvalidRecord")
    assert "pickup_zone_id 999 is outside 1..265" in letter.error_message


def test_a_non_finite_prediction_is_a_predict_dead_letter_naming_the_version() -> None:
    result = _score([_request(1)], DistanceModel(answer=float("nan")))
    letter = CODEC.decode(result.dead_letters[0].value, DeadLetter)
    assert (letter.stage, letter.model_version) == ("predict", "v7")


def test_every_record_gets_exactly_one_outcome() -> None:
    messages = [_request(i, pickup=(999 if i % 7 == 0 else 50)) for i in range(100)]
    messages += [FakeMessage(b"junk", _offset=1000 + i) for i in range(5)]
    result = _score(messages)
    assert len(result.predictions) + len(result.dead_letters) == len(messages)


def test_a_batch_with_no_valid_record_never_calls_the_model() -> None:
    model = DistanceModel()
    result = _score([FakeMessage(b"junk")], model)
    assert model.calls == 0 and len(result.dead_letters) == 1
