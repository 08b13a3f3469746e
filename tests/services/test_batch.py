"""A micro-batch: every record gets exactly one outcome, in one model call."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import numpy as np
import pytest

from edml.codec import Codec
from edml.contracts import DeadLetter, ShadowPredictions, TripPrediction, TripRequest
from edml.errors import ModelError, UnfitModel
from services.batch import Candidate, Outcome, answered_by_candidate, score_batch
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
    assert "pickup_zone_id 999 is outside 1..263" in letter.error_message


def test_the_tlcs_unknown_zones_are_convert_dead_letters_saying_so() -> None:
    result = _score([_request(1, pickup=264), _request(2, dropoff=265)])
    letters = [CODEC.decode(out.value, DeadLetter) for out in result.dead_letters]
    assert [letter.stage for letter in letters] == ["convert", "convert"]
    assert all("the TLC's unknown zone" in letter.error_message for letter in letters)


@pytest.mark.parametrize("pickup", [datetime(1970, 1, 1), datetime(2008, 12, 31, 23, 59),
                                    datetime(2100, 1, 1), datetime(9999, 12, 31)])
def test_an_implausible_pickup_time_is_a_convert_dead_letter(pickup: datetime) -> None:
    value = CODEC.encode(TripRequest("odd", pickup, 100, 110, 1))
    result = _score([FakeMessage(value, b"odd")])
    letter = CODEC.decode(result.dead_letters[0].value, DeadLetter)
    assert (letter.stage, letter.error_kind) == ("convert", "InvalidRecord")
    assert "pickup_datetime" in letter.error_message and not result.predictions


def test_a_pickup_beyond_any_calendar_is_a_convert_dead_letter_giving_its_milliseconds(
) -> None:
    record = {**TripRequest("far", datetime(2020, 1, 1), 100, 110, 1).to_avro(),
              "pickup_datetime": 2**62}  # a long no datetime holds: the hot path keeps longs
    value = CODEC.encode_record(TripRequest.SCHEMA, record)
    letter = CODEC.decode(_score([FakeMessage(value, b"far")]).dead_letters[0].value,
                          DeadLetter)
    assert (letter.stage, letter.error_kind) == ("convert", "InvalidRecord")
    assert f"pickup_datetime {2**62} ms is outside" in letter.error_message


def test_pickups_from_2009_to_a_day_ahead_are_scored() -> None:
    now = datetime(2023, 11, 14, 22, 13)  # NOW_MS, as a wall clock
    messages = [FakeMessage(CODEC.encode(TripRequest(f"t{i}", pickup, 100, 110, 1)), _offset=i)
                for i, pickup in enumerate([datetime(2009, 1, 1), now, now + timedelta(hours=20)])]
    assert len(_score(messages).predictions) == 3


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


class RaisingModel(DistanceModel):
    """Fails, as a loaded SavedModel does (ModelError), on any batch holding a zone in
    ``bad_zones``, on every batch (``always``), or on batches bigger than ``max_rows``."""

    def __init__(self, bad_zones: tuple[int, ...] = (), always: bool = False,
                 max_rows: int | None = None) -> None:
        super().__init__()
        self.bad_zones, self.always, self.max_rows = bad_zones, always, max_rows

    def predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        rows = len(columns["pickup_zone_id"])
        if self.always or np.isin(columns["pickup_zone_id"], self.bad_zones).any() or (
                self.max_rows is not None and rows > self.max_rows):
            self.calls += 1
            raise ModelError("prediction failed: the graph says no")
        return super().predict(columns)


def test_a_record_the_model_fails_on_alone_is_a_predict_dead_letter_and_the_rest_score() -> None:
    messages = [_request(i, pickup=(13 if i in (5, 77) else 50)) for i in range(100)]
    model = RaisingModel(bad_zones=(13,))
    result = _score(messages, model)
    letters = [CODEC.decode(out.value, DeadLetter) for out in result.dead_letters]
    assert sorted(letter.source_offset for letter in letters) == [5, 77]
    assert {(letter.stage, letter.model_version) for letter in letters} == {("predict", "v7")}
    assert "the graph says no" in letters[0].error_message
    assert len(result.predictions) == 98
    assert model.calls < 40  # halving: about 2 log2(100) calls per bad record, not 100


def test_a_model_that_fails_only_on_big_batches_scores_every_record_in_smaller_ones() -> None:
    result = _score([_request(i) for i in range(64)], RaisingModel(max_rows=5))
    assert len(result.predictions) == 64 and not result.dead_letters


def test_a_model_that_fails_on_everything_is_unfit_and_blames_no_record() -> None:
    with pytest.raises(UnfitModel, match=r"v7 failed on a batch of 10 .* and on the smoke"):
        _score([_request(i) for i in range(10)], RaisingModel(always=True))


class OneAnswerModel(DistanceModel):
    def predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        return np.array([600.0])  # one value per batch, whatever the batch


def test_a_model_giving_the_wrong_number_of_answers_is_unfit() -> None:
    with pytest.raises(UnfitModel, match="1 answers"):
        _score([_request(i) for i in range(10)], OneAnswerModel())


def test_a_dead_letter_of_a_record_at_the_brokers_size_limit_still_fits_and_says_so() -> None:
    huge = b"\x00" + bytes(range(256)) * 3_900  # ~1 MB of something that is no request
    result = _score([FakeMessage(huge, b"k" * 600_000, _offset=9)])
    out = result.dead_letters[0]
    assert len(out.value) < 70_000 and out.key is not None and len(out.key) == 1024
    letter = CODEC.decode(out.value, DeadLetter)
    assert letter.value == huge[:64 * 1024] and letter.value_size == len(huge)
    assert letter.value_sha256 == hashlib.sha256(huge).hexdigest()
    assert letter.source_offset == 9 and letter.stage == "decode"


def test_a_small_record_is_carried_whole_in_its_dead_letter() -> None:
    letter = CODEC.decode(_score([FakeMessage(b"junk", b"k")]).dead_letters[0].value,
                          DeadLetter)
    assert (letter.value, letter.value_size, letter.value_sha256) == (b"junk", None, None)


def _with_candidate(messages: list[FakeMessage], mode: str, weight: float,
                    candidate: DistanceModel):  # type: ignore[no-untyped-def]
    return score_batch(messages, DistanceModel(), "trips", "v7", CODEC, NOW_MS,
                       candidate=Candidate(candidate, "v8", mode, weight))


def _versions(outcomes: list[Outcome]) -> dict[str, str]:
    decoded = [CODEC.decode(out.value, TripPrediction) for out in outcomes]
    return {p.trip_id: p.model_version for p in decoded}


def _shadowed(outcomes: list[Outcome]) -> dict[str, str]:
    batches = [CODEC.decode(out.value, ShadowPredictions) for out in outcomes]
    return {p.trip_id: p.model_version for batch in batches for p in batch.predictions()}


def test_in_shadow_every_trip_is_served_by_the_champion_and_shadowed_by_the_candidate() -> None:
    candidate = DistanceModel(answer=999.0)
    result = _with_candidate([_request(i) for i in range(50)], "shadow", 0.0, candidate)
    assert candidate.calls == 1  # the same decoded rows, one more model call
    assert set(_versions(result.predictions).values()) == {"v7"}
    assert set(_shadowed(result.shadow).values()) == {"v8"}
    assert len(result.predictions) == len(_shadowed(result.shadow)) == 50
    assert len(result.shadow) == 1  # one message for the batch's shadow predictions
    assert result.predicted is not None and result.predicted.versions == ("v7", "v8")
    row = result.predicted.trip_ids.index("trip-3")
    assert result.predicted.seconds[row].tolist() == [900.0, 999.0]


def test_a_canary_answers_its_share_of_trips_and_the_other_side_goes_to_shadow() -> None:
    messages = [_request(i) for i in range(4000)]
    result = _with_candidate(messages, "canary", 0.1, DistanceModel(answer=999.0))
    served, shadowed = _versions(result.predictions), _shadowed(result.shadow)
    assert len(served) == len(shadowed) == 4000  # one main prediction per trip, one shadow
    assert all(served[t] != shadowed[t] for t in served)
    share = sum(v == "v8" for v in served.values()) / 4000
    # binomial(4000, 0.1): sd 0.47 points, so 10% +- 1.5 points is over 3 sd
    assert 0.085 < share < 0.115
    for trip, version in served.items():
        assert (version == "v8") == answered_by_candidate(trip, "v8", 0.1)


def test_a_trip_lands_on_the_same_side_of_a_rollout_every_time_and_wider_canaries_keep_it() -> None:
    trips = [f"trip-{i}" for i in range(2000)]
    at_10 = {t for t in trips if answered_by_candidate(t, "v8", 0.1)}
    assert at_10 == {t for t in trips if answered_by_candidate(t, "v8", 0.1)}
    assert at_10 <= {t for t in trips if answered_by_candidate(t, "v8", 0.5)}
    assert not any(answered_by_candidate(t, "v8", 0.0) for t in trips)
    assert all(answered_by_candidate(t, "v8", 1.0) for t in trips)


def test_a_failing_candidate_costs_no_trip_its_prediction() -> None:
    result = _with_candidate([_request(i, pickup=(13 if i % 2 else 50)) for i in range(40)],
                             "canary", 1.0, RaisingModel(bad_zones=(13,)))
    assert not result.dead_letters and result.candidate_unfit is None
    served = _versions(result.predictions)
    assert len(served) == 40 and result.candidate_failures == 20
    assert {served[f"trip-{i}"] for i in range(1, 40, 2)} == {"v7"}  # the champion stood in
    assert {served[f"trip-{i}"] for i in range(0, 40, 2)} == {"v8"}


def test_an_unfit_candidate_is_reported_and_the_champion_answers_everything() -> None:
    result = _with_candidate([_request(i) for i in range(10)], "shadow", 0.0,
                             RaisingModel(always=True))
    assert isinstance(result.candidate_unfit, UnfitModel)
    assert set(_versions(result.predictions).values()) == {"v7"} and not result.shadow
