"""Drift judged from the workers' windows: real October 2019 trips, scored by a real model,
counted by the workers' monitor (``services.drift``) and judged by the controller's watch
against the reference profile the trainer stored with the model."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from controller.drift import DriftPolicy, DriftTracker, VersionWatch, read_profile
from edml.artifacts import artifact_uri
from edml.columns import input_columns
from edml.contracts import DriftWindow, ModelEvent, ModelMetadata, TripCompleted, TripRequest
from edml.errors import ArtifactError, StorageError
from edml.event_time import day_number
from edml.profile import Profile
from edml.samples import sample_events
from edml.savedmodel import load_savedmodel
from edml.settings import StorageSettings
from edml.storage import FileStore
from services.drift import DriftMonitor
from tests.services.workers import real_trips

pytestmark = pytest.mark.tf

Trip = tuple[TripRequest, TripCompleted]
NOW = datetime(2019, 10, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def ten_days() -> list[Trip]:
    """October 1..10, 2019: the validation months' neighbour, no drift in it."""
    return [t for t in real_trips(20_000) if t[0].pickup_datetime.day <= 10]


def _windows(model_dir: Path, trips: list[Trip]) -> list[DriftWindow]:
    """What a worker would send for these trips: requests in batches, then the joins."""
    profile, model = Profile.read(model_dir), load_savedmodel(model_dir)
    assert profile is not None
    requests = [request for request, _ in trips]
    columns = input_columns(model.signature).from_requests(requests)
    predicted = model.predict(columns)
    monitor = DriftMonitor("trips", "worker-0")
    for start in range(0, len(requests), 500):
        rows = slice(start, start + 500)
        monitor.requests("v1", profile, {k: v[rows] for k, v in columns.items()},
                         predicted[rows])
    for (request, done), seconds in zip(trips, predicted.tolist(), strict=True):
        monitor.outcome("v1", day_number(request.pickup_datetime.date()),
                        seconds, done.duration_seconds)
    return monitor.drain(NOW)


def _judge(model_dir: Path, trips: list[Trip]) -> list[tuple[str, date]]:
    watch = VersionWatch(DriftPolicy(), Profile.read(model_dir))
    for window in _windows(model_dir, trips):
        watch.add(window)
    return [(f.detector, f.window_end) for f in watch.findings()]


def _shifted(trips: list[Trip], from_day: int, passengers: int | None = None,
             slower: float = 1.0) -> list[Trip]:
    return [(dataclasses.replace(r, passenger_count=passengers or r.passenger_count),
             dataclasses.replace(a, duration_seconds=a.duration_seconds * slower))
            if r.pickup_datetime.day >= from_day else (r, a) for r, a in trips]


def test_ten_ordinary_days_raise_nothing(quick_model: Path, ten_days: list[Trip]) -> None:
    assert _judge(quick_model, ten_days) == []


def test_a_shift_in_passengers_is_found_on_the_first_full_week(
        quick_model: Path, ten_days: list[Trip]) -> None:
    found = _judge(quick_model, _shifted(ten_days, from_day=6, passengers=5))
    assert ("inputs.passenger_count", date(2019, 10, 7)) in found
    assert not [f for f in found if not f[0].startswith("inputs.passenger_count")]


def test_trips_running_longer_than_predicted_are_found_as_bias_within_days(
        quick_model: Path, ten_days: list[Trip]) -> None:
    found = _judge(quick_model, _shifted(ten_days, from_day=6, slower=1.6))
    bias = [day for detector, day in found if detector == "outcomes.bias"]
    assert bias and bias[0] <= date(2019, 10, 8)  # within 3 event-time days of the onset
    assert not [f for f in found if f[0].startswith("inputs.")]  # the inputs did not move


def test_no_finding_before_the_first_full_window_nor_before_a_day_is_over(
        quick_model: Path, ten_days: list[Trip]) -> None:
    early = [t for t in _shifted(ten_days, from_day=1, passengers=5)
             if t[0].pickup_datetime.day <= 6]
    assert _judge(quick_model, early) == []  # six days: no week to compare yet


# -- from findings to events: the tracker -------------------------------------------------


def _champion(profile: str | None = "edml_profile.json") -> ModelMetadata:
    base = next(v for v, _ in sample_events() if isinstance(v, ModelMetadata))
    return dataclasses.replace(base, name="trips", version="v1", profile=profile)


def _tracker(model_dir: Path, **kwargs: object) -> DriftTracker:
    def read(state: ModelMetadata) -> Profile:
        profile = Profile.read(model_dir)
        assert profile is not None
        return profile
    return DriftTracker(DriftPolicy(), read, **kwargs)  # type: ignore[arg-type]


def test_findings_become_drift_events_and_one_retrain_request(
        quick_model: Path, ten_days: list[Trip]) -> None:
    tracker = _tracker(quick_model, retrain_window_days=14, retrain_settle_days=0)
    for window in _windows(quick_model, _shifted(ten_days, 6, passengers=5, slower=1.6)):
        tracker.window(window)
    events = tracker.events(_champion(), "controller", NOW)
    kinds = [e.kind for e in events]
    assert kinds.count("retrain_requested") == 1 and kinds.count("drift_detected") >= 2
    request = next(e.retrain for e in events if e.retrain is not None)
    first = min(e.drift.window_end for e in events if e.drift is not None)
    assert request.champion_version == "v1"
    assert (request.train_start, request.train_end) == (first - timedelta(days=13), first)
    assert "inputs.passenger_count" in request.reason


def test_a_request_waits_for_the_settle_days_after_the_first_finding(
        quick_model: Path, ten_days: list[Trip]) -> None:
    tracker = _tracker(quick_model, retrain_window_days=14, retrain_settle_days=2)
    windows = _windows(quick_model, _shifted(ten_days, 6, passengers=5))
    first_days = [w for w in windows if w.day <= date(2019, 10, 8)]
    for window in first_days:
        tracker.window(window)
    found = tracker.events(_champion(), "controller", NOW)  # judged through Oct 7
    assert [e.kind for e in found] == ["drift_detected"]
    assert found[0].drift is not None and found[0].drift.window_end == date(2019, 10, 7)
    for window in windows[len(first_days):]:
        tracker.window(window)
    request = [e.retrain for e in tracker.events(_champion(), "controller", NOW)
               if e.retrain is not None]  # judged through Oct 9: the settle days are in
    assert [(r.train_start, r.train_end) for r in request] == [
        (date(2019, 9, 24), date(2019, 10, 9))]


def test_no_request_while_a_candidate_is_in_rollout_and_one_after_it_is_rolled_back(
        quick_model: Path, ten_days: list[Trip]) -> None:
    tracker = _tracker(quick_model, retrain_settle_days=0)
    for window in _windows(quick_model, _shifted(ten_days, 6, passengers=5)):
        tracker.window(window)
    in_rollout = next(s for s, _ in sample_events()
                      if isinstance(s, ModelMetadata) and s.rollout is not None)
    in_rollout = dataclasses.replace(in_rollout, name="trips", version="v1",
                                     profile="edml_profile.json")
    held = tracker.events(in_rollout, "controller", NOW)
    assert held and "retrain_requested" not in [e.kind for e in held]
    rolled_back = tracker.events(_champion(), "controller", NOW)
    assert [e.kind for e in rolled_back] == ["retrain_requested"]


def test_a_restarted_tracker_repeats_neither_findings_nor_requests(
        quick_model: Path, ten_days: list[Trip]) -> None:
    windows = _windows(quick_model, _shifted(ten_days, 6, passengers=5))
    first = _tracker(quick_model, retrain_settle_days=0)
    for window in windows:
        first.window(window)
    made = first.events(_champion(), "controller", NOW)
    restarted = _tracker(quick_model, retrain_settle_days=0)
    for window in windows:
        restarted.window(window)
    for model_event in made:  # read back from the model-events topic
        restarted.model_event(model_event)
    assert "retrain_requested" in [e.kind for e in made]
    assert restarted.events(_champion(), "controller", NOW) == []


def test_a_keyed_models_traffic_is_judged_as_a_model_of_its_own(
        quick_model: Path, ten_days: list[Trip]) -> None:
    tracker = _tracker(quick_model, retrain_settle_days=0)
    for window in _windows(quick_model, ten_days):  # the fleet model's: no drift
        tracker.window(window)
    for window in _windows(quick_model, _shifted(ten_days, 6, passengers=5)):  # key 132's
        tracker.window(dataclasses.replace(window, model_key="132"))
    assert tracker.events(_champion(), "controller", NOW) == []
    keyed = dataclasses.replace(_champion(), key="132", routed_by="pickup_zone_id")
    events = tracker.events(keyed, "controller", NOW)
    assert {(e.kind, e.model_name, e.model_key) for e in events} == {
        ("drift_detected", "trips", "132"), ("retrain_requested", "trips", "132")}
    request = next(e.retrain for e in events if e.retrain is not None)
    assert request.request_id.startswith("retrain-trips-132-v1-")
    assert "inputs.passenger_count" in request.reason


def test_an_open_request_holds_back_a_second_until_answered_or_expired(
        quick_model: Path) -> None:
    tracker = _tracker(quick_model, retrain_timeout_days=14)
    request = next(e for e, _ in sample_events()
                   if isinstance(e, ModelEvent) and e.retrain is not None)
    request = dataclasses.replace(request, model_name="trips", at=NOW)
    tracker.model_event(request)
    assert request.retrain is not None
    end = request.retrain.train_end
    assert tracker.open_request("trips", end + timedelta(days=14)) == request
    assert tracker.open_request("trips", end + timedelta(days=15)) is None  # expired
    assert tracker.open_request("trips", end, champion=request.retrain.champion_version) \
        == request
    assert tracker.open_request("trips", end, champion="v9") is None  # about another one
    tracker.state(dataclasses.replace(_champion(), version="v2",
                                      retrain_request=request.retrain.request_id))
    assert tracker.open_request("trips", end) is None  # answered


def test_a_version_without_a_profile_is_not_judged_and_storage_away_is_retried_later(
        quick_model: Path, ten_days: list[Trip]) -> None:
    calls = []

    def unavailable(state: ModelMetadata) -> Profile:
        calls.append(state.version)
        raise StorageError("storage is away")

    tracker = DriftTracker(DriftPolicy(), unavailable)
    for window in _windows(quick_model, _shifted(ten_days, 6, passengers=5)):
        tracker.window(window)
    assert tracker.events(_champion(profile=None), "controller", NOW) == []
    assert calls == []  # nothing to read
    assert tracker.events(_champion(), "controller", NOW) == []
    assert tracker.events(_champion(), "controller", NOW + timedelta(seconds=10)) == []
    assert calls == ["v1"]  # storage is not asked again at every poll
    assert tracker.events(_champion(), "controller", NOW + timedelta(seconds=31)) == []
    assert calls == ["v1", "v1"]  # but again after a while


def test_a_profile_is_read_only_from_the_storage_roots_and_by_its_own_name(
        quick_model: Path, tmp_path: Path) -> None:
    storage = StorageSettings(uri=f"file://{tmp_path}/models")
    uri = artifact_uri(storage.uri, "trips", "v1")
    FileStore().upload_dir(quick_model, uri)
    state = dataclasses.replace(_champion(), storage_uri=uri)
    stored = Profile.read(quick_model)
    assert stored is not None and read_profile(storage, state).to_json() == stored.to_json()
    with pytest.raises(ArtifactError, match="not the folder of trips v1"):
        read_profile(storage, dataclasses.replace(state, storage_uri=f"file://{quick_model}/"))
    with pytest.raises(ArtifactError, match=r"is not edml_profile\.json"):
        read_profile(storage, dataclasses.replace(state, profile="../../secrets.json"))
    # a keyed model's, from its own key's folder only
    keyed_uri = artifact_uri(storage.uri, "trips", "v1", key="132")
    FileStore().upload_dir(quick_model, keyed_uri)
    keyed = dataclasses.replace(state, key="132", storage_uri=keyed_uri)
    assert read_profile(storage, keyed).to_json() == stored.to_json()
    with pytest.raises(ArtifactError, match=r"not the folder of trips\[132\] v1"):
        read_profile(storage, dataclasses.replace(keyed, storage_uri=uri))
