"""The 2020 scenario's account of a run: the monthly table and the issue's targets, from
what a run measured (the run itself takes minutes: ``bench/drift_2020.py``)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd

from edml.contracts import DriftFinding, ModelEvent
from services.drift_scenario import ScenarioResult, monthly_table, targets, version_labels


def _trips(served_april: float, without_answer: int = 0) -> pd.DataFrame:
    """Two trips a month, March..May: actual 10 min; frozen 12 (March 10); zone-pair 11."""
    months = ["2020-03", "2020-03", "2020-04", "2020-04", "2020-05", "2020-05"]
    versions = ["2019", "2019", "v-a", "v-a", "v-b", "v-a"]
    served = [600.0, 600.0, served_april, served_april, 600.0, 600.0]
    for i in range(without_answer):
        versions[-1 - i], served[-1 - i] = None, np.nan  # type: ignore[call-overload]
    return pd.DataFrame({"trip_id": [f"t{i}" for i in range(6)], "month": months,
                         "actual": 600.0, "served": served, "version": versions,
                         "frozen": [600.0, 600.0] + [720.0] * 4, "zone_pair": 660.0})


def _result(trips: pd.DataFrame, found: list[date], without: int = 0) -> ScenarioResult:
    findings = [ModelEvent("m", "2019", "drift_detected", "c", datetime(2026, 1, 1, tzinfo=UTC),
                           drift=DriftFinding("inputs.pickup_area", 0.2, 0.08, day, day, ""))
                for day in found]
    return ScenarioResult(trips, [], findings, without, 1.0)


def test_the_table_gives_each_month_its_three_maes_and_who_answered() -> None:
    table = monthly_table(_trips(served_april=900.0))
    assert table.loc["2020-04", ["served", "frozen", "zone-pair"]].tolist() == [5.0, 2.0, 1.0]
    assert table.loc["2020-05", "versions"] == "r1 50%, r2 50%"
    assert version_labels(_trips(600.0)) == {"2019": "2019", "v-a": "r1", "v-b": "r2"}


def test_a_run_that_caught_the_shift_in_time_meets_every_target() -> None:
    met = targets(_result(_trips(served_april=600.0), [date(2020, 3, 18)]))
    assert all(met.values()), met


def test_each_target_is_missed_by_the_run_that_misses_it() -> None:
    missed = targets(_result(_trips(served_april=900.0, without_answer=0),
                             [date(2020, 2, 10), date(2020, 3, 28)], without=2))
    assert {target for target, met in missed.items() if not met} == {
        "no finding before the onset",
        "first finding within 7 event-time days of the onset",
        "served 2020-04..08 at least 20% below the frozen champion",
        "served below the zone-pair median in every month 2020-04..08",
        "no request without an outcome"}
    late = targets(_result(_trips(600.0), [date(2020, 3, 28)]))
    assert not late["first finding within 7 event-time days of the onset"]
