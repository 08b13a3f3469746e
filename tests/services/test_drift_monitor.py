"""A worker's drift monitor: the champion's traffic counted per event-time day, in the
bins of its reference profile, drained as windows that add up across workers."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from edml.columns import input_columns
from edml.contracts import DriftWindow
from edml.profile import Profile
from edml.samples import SIGNATURE, smoke_requests
from services.batch import KeyedAnswers
from services.drift import DriftMonitor

pytestmark = pytest.mark.tf


def test_requests_are_counted_per_pickup_day_and_a_drain_starts_afresh(
        quick_model: Path) -> None:
    profile = Profile.read(quick_model)
    assert profile is not None
    requests = smoke_requests()  # 2019-10-14, 16, 17, 19 and 20
    columns = input_columns(SIGNATURE).from_requests(requests)
    monitor = DriftMonitor("trips", "worker-0")
    monitor.requests("v1", profile, columns, np.full(len(requests), 600.0))
    windows = {w.day: w for w in monitor.drain(datetime(2019, 10, 21, tzinfo=UTC))}
    assert sorted(windows) == [date(2019, 10, d) for d in (14, 16, 17, 19, 20)]
    monday = windows[date(2019, 10, 14)]
    assert monday.requests == 1 and monday.latest_pickup == datetime(2019, 10, 14, 8, 30)
    assert {name: sum(counts) for name, counts in monday.histograms.items()} == {
        name: 1 for name in profile.bins}
    assert monday.histograms["hour_of_week"].index(1) == 8  # Monday 08:00
    assert monday.histograms["passenger_count"].index(1) == 1
    assert monitor.drain() == []


def test_a_row_the_champion_failed_counts_as_a_request_but_not_as_a_prediction(
        quick_model: Path) -> None:
    profile = Profile.read(quick_model)
    assert profile is not None
    requests = smoke_requests()[:1]
    columns = input_columns(SIGNATURE).from_requests(requests)
    monitor = DriftMonitor("trips", "worker-0")
    monitor.requests("v1", profile, columns, np.array([np.nan]))
    [window] = monitor.drain(datetime(2019, 10, 21, tzinfo=UTC))
    assert window.requests == 1 and sum(window.histograms["hour_of_week"]) == 1
    assert sum(window.histograms["prediction"]) == 0


def test_each_days_histograms_are_the_profiles_own_counts_of_that_days_rows(
        quick_model: Path) -> None:
    profile = Profile.read(quick_model)
    assert profile is not None
    requests = smoke_requests() * 40
    columns = input_columns(SIGNATURE).from_requests(requests)
    seconds = np.random.default_rng(7).uniform(60.0, 5400.0, len(requests))
    monitor = DriftMonitor("trips", "worker-0")
    monitor.requests("v1", profile, columns, seconds)
    days = columns["pickup_datetime"] // 86_400_000
    windows = monitor.drain(datetime(2019, 10, 21, tzinfo=UTC))
    assert len(windows) == 5
    for window in windows:
        rows = days == (window.day - date(1970, 1, 1)).days
        expected = profile.counts({name: column[rows] for name, column in columns.items()},
                                  seconds[rows])
        assert window.requests == rows.sum()
        assert window.histograms == {name: c.tolist() for name, c in expected.items()}


def _as_records(windows: list[DriftWindow]) -> dict[tuple[str | None, str, date], object]:
    return {(w.model_key, w.model_version, w.day): (w.requests, w.histograms,
                                                     w.latest_pickup) for w in windows}


def test_keyed_models_traffic_is_counted_per_key_as_each_would_count_its_own_rows(
        quick_model: Path) -> None:
    profile = Profile.read(quick_model)
    assert profile is not None
    # another binning (other distance edges): its key's rows are binned apart
    other = dataclasses.replace(profile, distance_edges=(1.0, 5.0),
                                reference={**profile.reference, "centroid_distance":
                                           np.zeros(3, dtype=np.int64)})
    requests = smoke_requests() * 3
    columns = input_columns(SIGNATURE).from_requests(requests)
    seconds = np.linspace(300.0, 2400.0, len(requests))
    seconds[4] = np.nan  # its model failed that row
    groups = [("a", "a1", profile, np.array([0, 2, 4, 9])),
              ("b", "b7", other, np.array([1, 3, 5, 6, 14])),
              ("d", "d3", profile, np.array([8, 10, 11, 12, 13])),  # counted with a's
              ("c", "c1", None, np.array([7]))]  # no profile: not counted
    together = DriftMonitor("trips", "worker-0")
    together.keyed_requests(profile, columns, [
        KeyedAnswers(key, version, p, rows, seconds[rows]) for key, version, p, rows in groups])
    apart = DriftMonitor("trips", "worker-0")
    for key, version, p, rows in groups:  # what each key's own count would be
        if p is None:
            continue
        apart.requests(version, p, {name: column[rows] for name, column in columns.items()},
                       seconds[rows], key=key)
    now = datetime(2019, 10, 21, tzinfo=UTC)
    counted = _as_records(together.drain(now))
    assert counted == _as_records(apart.drain(now))
    assert {key for key, _, _ in counted} == {"a", "b", "d"}
