"""A worker's drift monitor: the champion's traffic counted per event-time day, in the
bins of its reference profile, drained as windows that add up across workers."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from edml.columns import input_columns
from edml.profile import Profile
from edml.samples import SIGNATURE, smoke_requests
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
