"""Evaluation in minutes: the model against two baselines computed in the same run, overall,
by hour of day and by pickup borough."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from trainer.zones import ZoneTable

__all__ = ["Evaluation", "baselines", "error_metrics", "evaluate"]


def error_metrics(actual_s: np.ndarray, predicted_s: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and RMSLE, in minutes (RMSLE is unitless)."""
    actual, predicted = actual_s / 60.0, predicted_s / 60.0
    error = predicted - actual
    return {
        "mae_minutes": float(np.abs(error).mean()),
        "rmse_minutes": float(np.sqrt((error**2).mean())),
        "rmsle": float(np.sqrt(((np.log1p(predicted) - np.log1p(actual)) ** 2).mean())),
    }


def baselines(train: pd.DataFrame, valid: pd.DataFrame) -> dict[str, np.ndarray]:
    """Predictions of the global median and of the median per pickup x dropoff pair (falling
    back to the pickup zone's median, then the global median, for pairs never seen)."""
    global_median = float(train["duration_seconds"].median())
    pair = train.groupby(["pickup_zone_id", "dropoff_zone_id"])["duration_seconds"].median()
    pickup = train.groupby("pickup_zone_id")["duration_seconds"].median()
    keys = pd.MultiIndex.from_frame(valid[["pickup_zone_id", "dropoff_zone_id"]])
    by_pair = pd.Series(pair.reindex(keys).to_numpy(), index=valid.index)
    by_pair = by_pair.fillna(valid["pickup_zone_id"].map(pickup)).fillna(global_median)
    return {
        "global median": np.full(len(valid), global_median),
        "zone-pair median": by_pair.to_numpy(),
    }


@dataclass
class Evaluation:
    overall: pd.DataFrame  # rows: model and baselines; columns: metrics
    by_hour: pd.DataFrame  # rows: hour 0..23; columns: MAE of model and baselines, trips
    by_borough: pd.DataFrame  # rows: pickup borough; same columns
    predicted: np.ndarray  # seconds, the model's, per validation trip
    actual: np.ndarray


def evaluate(train: pd.DataFrame, valid: pd.DataFrame, predicted_s: np.ndarray,
             zones: ZoneTable) -> Evaluation:
    actual = valid["duration_seconds"].to_numpy(float)
    predictions = {"model": predicted_s, **baselines(train, valid)}
    overall = pd.DataFrame({name: error_metrics(actual, p) for name, p in predictions.items()}).T
    errors = pd.DataFrame({name: np.abs(p - actual) / 60.0 for name, p in predictions.items()})
    errors["hour"] = valid["pickup_datetime"].dt.hour.to_numpy()
    errors["borough"] = zones.borough_of(valid["pickup_zone_id"].to_numpy())

    def grouped(by: str) -> pd.DataFrame:
        table = errors.groupby(by)[list(predictions)].mean()
        table["trips"] = errors.groupby(by).size()
        return table

    return Evaluation(overall, grouped("hour"), grouped("borough"), predicted_s, actual)
