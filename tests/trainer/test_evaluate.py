"""Metrics and baselines, on numbers small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainer.evaluate import baselines, error_metrics


def test_error_metrics_are_in_minutes() -> None:
    metrics = error_metrics(np.array([600.0, 1200.0]), np.array([660.0, 1080.0]))
    assert metrics["mae_minutes"] == pytest.approx(1.5)
    assert metrics["rmse_minutes"] == pytest.approx(np.sqrt((1 + 4) / 2))


def test_zone_pair_baseline_falls_back_to_pickup_zone_then_global_median() -> None:
    train = pd.DataFrame({"pickup_zone_id": [1, 1, 1, 2], "dropoff_zone_id": [5, 5, 6, 7],
                          "duration_seconds": [100.0, 300.0, 900.0, 50.0]})
    valid = pd.DataFrame({"pickup_zone_id": [1, 1, 3], "dropoff_zone_id": [5, 9, 9]})
    predicted = baselines(train, valid)
    assert predicted["zone-pair median"].tolist() == [200.0, 300.0, 200.0]
    assert predicted["global median"].tolist() == [200.0] * 3
