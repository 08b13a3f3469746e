"""A batch of a family routed by key: each trip answered by its key's model where one is
loaded, by the fleet model otherwise, and every prediction says which."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import numpy as np

from edml.codec import Codec
from edml.contracts import CANARY, SHADOW, ShadowPredictions, TripPrediction, TripRequest
from edml.errors import ModelError
from services.batch import (
    KEYED,
    Candidate,
    Keyed,
    KeyedRollout,
    Routing,
    answered_by_candidate,
    score_batch,
)
from tests.services.fakes import DistanceModel, FakeMessage

CODEC = Codec()
NOW_MS = 1_700_000_000_500


def _trip(i: int, pickup: int) -> FakeMessage:
    return FakeMessage(CODEC.encode(TripRequest(f"trip-{i}", datetime(2019, 10, 1, 8, 0),
                                                pickup, pickup, 1)), f"trip-{i}".encode())


class FailingOn:
    """Answers ``answer`` except for trips from zone ``zone``, where it fails."""

    signature = DistanceModel.signature

    def __init__(self, answer: float, zone: int | None) -> None:
        self.answer, self.zone = answer, zone  # zone None: fails on every trip

    def predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        if self.zone is None or (columns["pickup_zone_id"] == self.zone).any():
            raise ModelError("cannot")
        return np.full(len(columns["pickup_zone_id"]), self.answer)


def _routed(models: Mapping[str, Keyed], asked: list[list[str]] | None = None,
            field: str = "pickup_zone_id") -> Routing:
    def serving(keys: list[str]) -> Mapping[str, Keyed]:
        if asked is not None:
            asked.append(keys)
        return {key: models[key] for key in keys if key in models}
    return Routing(field, serving)


def _predictions(result: object) -> dict[str, TripPrediction]:
    decoded = [CODEC.decode(out.value, TripPrediction) for out in result.predictions]  # type: ignore[attr-defined]
    return {p.trip_id: p for p in decoded}


def test_three_keys_reach_their_own_models_and_a_fourth_falls_back_to_the_fleet() -> None:
    keyed = {str(zone): Keyed(DistanceModel(answer=1000.0 + zone), f"k{zone}")
             for zone in (10, 20, 30)}
    asked: list[list[str]] = []
    trips = [_trip(i, zone) for i, zone in enumerate([10, 20, 30, 40, 10, 40])]
    result = score_batch(trips, DistanceModel(answer=500.0), "trips", "v1", CODEC, NOW_MS,
                         routing=_routed(keyed, asked))
    got = _predictions(result)
    assert asked == [["10", "20", "30", "40"]]  # one ask per batch, every key present once
    for trip_id, zone in (("trip-0", 10), ("trip-1", 20), ("trip-2", 30), ("trip-4", 10)):
        p = got[trip_id]
        assert (p.predicted_duration_seconds, p.model_version, p.model_key, p.fallback) == \
            (1000.0 + zone, f"k{zone}", str(zone), False)
    for trip_id in ("trip-3", "trip-5"):
        p = got[trip_id]
        assert (p.predicted_duration_seconds, p.model_version, p.model_key, p.fallback) == \
            (500.0, "v1", None, True)
    assert (result.keyed, result.fallbacks) == (4, 2)
    assert result.served_by == {KEYED: 4, "v1": 2}
    # the live evaluation gets both: the fleet's on every trip, each key's on its trips
    predicted = result.predicted
    assert predicted is not None and predicted.versions == ("v1",)
    assert {(g.key, g.versions, tuple(predicted.trip_ids[row] for row in g.rows.tolist()))
            for g in predicted.keyed} == {("10", ("k10",), ("trip-0", "trip-4")),
                                          ("20", ("k20",), ("trip-1",)),
                                          ("30", ("k30",), ("trip-2",))}


def test_each_key_present_costs_one_model_call() -> None:
    model = DistanceModel(answer=900.0)
    trips = [_trip(i, 10 + i % 3) for i in range(30)]
    score_batch(trips, DistanceModel(), "trips", "v1", CODEC, NOW_MS,
                routing=_routed({"10": Keyed(model, "k"), "11": Keyed(model, "k")}))
    assert model.calls == 2


def test_a_keyed_model_is_called_on_a_power_of_two_of_rows_and_each_trip_gets_its_own_answer(
        ) -> None:
    class Sizes(DistanceModel):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[int] = []

        def predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
            self.rows.append(len(columns["pickup_zone_id"]))
            return super().predict(columns)

    keyed = Sizes()
    dropoffs = [10, 13, 17, 30, 11]  # 60 s a zone apart from the pickup, zone 10
    trips = [FakeMessage(CODEC.encode(TripRequest(f"trip-{i}", datetime(2019, 10, 1, 8, 0),
                                                  10, dropoff, 1)), f"trip-{i}".encode())
             for i, dropoff in enumerate(dropoffs)]
    result = score_batch(trips, DistanceModel(answer=1.0), "trips", "v1", CODEC, NOW_MS,
                         routing=_routed({"10": Keyed(keyed, "k10")}))
    assert keyed.rows == [8]  # five rows, the last repeated
    got = _predictions(result)
    assert [got[f"trip-{i}"].predicted_duration_seconds for i in range(5)] == [
        300.0 + 60.0 * abs(10 - dropoff) for dropoff in dropoffs]


def test_routed_by_borough_the_zones_of_a_borough_share_their_models_one_call() -> None:
    manhattan = DistanceModel(answer=700.0)
    asked: list[list[str]] = []
    zones = [236, 237, 161, 132, 236]  # Upper East Side x2, Midtown; JFK is in Queens
    result = score_batch([_trip(i, zone) for i, zone in enumerate(zones)],
                         DistanceModel(answer=500.0), "trips", "v1", CODEC, NOW_MS,
                         routing=_routed({"manhattan": Keyed(manhattan, "m1")}, asked,
                                         "pickup_borough"))
    assert asked == [["manhattan", "queens"]] and manhattan.calls == 1
    got = _predictions(result)
    assert [(got[f"trip-{i}"].model_key, got[f"trip-{i}"].predicted_duration_seconds)
            for i in range(len(zones))] == [("manhattan", 700.0)] * 3 + [(None, 500.0),
                                                                         ("manhattan", 700.0)]


def test_trips_a_keyed_model_fails_on_are_answered_by_the_fleet_as_a_fallback() -> None:
    # fails on zone 10's whole share but not on the smoke requests: the trips alone fail
    keyed = {"10": Keyed(FailingOn(1000.0, zone=10), "k10")}
    result = score_batch([_trip(0, 10), _trip(1, 10)], DistanceModel(answer=500.0), "trips",
                         "v1", CODEC, NOW_MS, routing=_routed(keyed))
    assert not result.dead_letters and not result.keyed_unfit
    assert {(p.model_version, p.fallback) for p in _predictions(result).values()} == \
        {("v1", True)}


def test_a_keyed_model_unfit_on_the_smoke_requests_is_reported_and_its_trips_answered() -> None:
    keyed = {"10": Keyed(FailingOn(1000.0, zone=None), "k10")}
    result = score_batch([_trip(0, 10)], DistanceModel(answer=500.0), "trips", "v1", CODEC,
                         NOW_MS, routing=_routed(keyed))
    assert list(result.keyed_unfit) == ["10"]
    assert [(p.model_version, p.fallback) for p in _predictions(result).values()] == \
        [("v1", True)]


def test_without_routing_no_prediction_is_a_fallback() -> None:
    result = score_batch([_trip(0, 10)], DistanceModel(), "trips", "v1", CODEC, NOW_MS)
    assert [(p.model_key, p.fallback) for p in _predictions(result).values()] == \
        [(None, False)]


def _shadows(result: object) -> dict[str, ShadowPredictions]:
    """The shadow topic's messages of a batch, by version."""
    decoded = [CODEC.decode(out.value, ShadowPredictions) for out in result.shadow]  # type: ignore[attr-defined]
    return {s.model_version: s for s in decoded}


def test_a_keys_shadow_candidate_scores_its_keys_trips_and_only_the_shadow_topic_sees_it(
) -> None:
    keyed = {"10": Keyed(DistanceModel(answer=1000.0), "k10",
                         Candidate(DistanceModel(answer=1100.0), "k10-next", SHADOW, 0.0)),
             "20": Keyed(DistanceModel(answer=2000.0), "k20")}
    trips = [_trip(i, zone) for i, zone in enumerate([10, 20, 10, 40, 10])]
    result = score_batch(trips, DistanceModel(answer=500.0), "trips", "v1", CODEC, NOW_MS,
                         clock=iter(range(100)).__next__, routing=_routed(keyed))
    got = _predictions(result)
    assert {t: (p.model_version, p.model_key) for t, p in got.items()} == {
        "trip-0": ("k10", "10"), "trip-1": ("k20", "20"), "trip-2": ("k10", "10"),
        "trip-3": ("v1", None), "trip-4": ("k10", "10")}
    (shadow,) = _shadows(result).values()
    assert (shadow.model_version, shadow.model_key, shadow.trip_ids) == \
        ("k10-next", "10", ["trip-0", "trip-2", "trip-4"])
    assert shadow.predicted_duration_seconds == [1100.0] * 3
    # its rollout's evidence: 3 trips scored, none failed, one model call's time
    assert result.keyed_rollouts == [KeyedRollout("10", "k10", "k10-next", 3, 0, 1.0)]
    predicted = result.predicted
    assert predicted is not None
    (group,) = [g for g in predicted.keyed if g.key == "10"]
    assert group.versions == ("k10", "k10-next")
    assert group.seconds.tolist() == [[1000.0, 1100.0]] * 3


def test_a_keys_canary_answers_its_share_of_that_keys_trips_each_trip_once() -> None:
    keyed = {"10": Keyed(DistanceModel(answer=1000.0), "k10",
                         Candidate(DistanceModel(answer=1100.0), "k10-next", CANARY, 0.5))}
    trips = [_trip(i, 10 if i % 4 else 20) for i in range(200)]
    result = score_batch(trips, DistanceModel(answer=500.0), "trips", "v1", CODEC, NOW_MS,
                         routing=_routed(keyed))
    got = _predictions(result)
    assert len(result.predictions) == len(got) == 200  # one main prediction a trip
    zone_10 = [f"trip-{i}" for i in range(200) if i % 4]
    canary = {t for t in zone_10 if answered_by_candidate(t, "k10-next", 0.5)}
    assert 0 < len(canary) < len(zone_10)
    for trip_id in zone_10:
        assert (got[trip_id].model_version, got[trip_id].model_key) == \
            (("k10-next" if trip_id in canary else "k10"), "10")
    # what the main topic did not carry of the key's two models goes to the shadow topic
    shadows = _shadows(result)
    assert set(shadows["k10"].trip_ids) == canary
    assert set(shadows["k10-next"].trip_ids) == set(zone_10) - canary
    assert {p.model_version for t, p in got.items() if t not in zone_10} == {"v1"}
