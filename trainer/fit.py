"""Fitting the model: inputs from trip frames, a time-based split, a seeded training run."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from edml.columns import input_columns
from edml.errors import DataError
from edml.samples import SIGNATURE
from trainer.model import INPUTS, TripFeatures, build_model
from trainer.zones import ZoneTable

__all__ = ["Split", "TrainResult", "fit", "model_inputs", "split_by_days", "split_by_time"]


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    valid: pd.DataFrame


@dataclass
class TrainResult:
    model: keras.Model
    history: dict[str, list[float]]
    epochs_run: int


def split_by_time(trips: pd.DataFrame, validation_months: int) -> Split:
    """Train on the earlier months, validate on the latest ``validation_months``."""
    months = sorted(trips["month"].unique())
    if len(months) <= validation_months:
        raise DataError(
            f"the data spans {len(months)} month(s); a time-based split needs more than the "
            f"{validation_months} validation month(s)"
        )
    first_valid = months[-validation_months]
    is_valid = trips["month"] >= first_valid
    return Split(trips[~is_valid].reset_index(drop=True), trips[is_valid].reset_index(drop=True))


def split_by_days(trips: pd.DataFrame, validation_days: int) -> Split:
    """Train on the earlier days, validate on the latest ``validation_days`` pickup days
    (a retrain's window is weeks, not months)."""
    days = trips["pickup_datetime"].dt.normalize()
    last = days.max()
    is_valid = days > last - pd.Timedelta(days=validation_days)
    if is_valid.all() or not is_valid.any():
        raise DataError(f"the trips span {days.nunique()} day(s); a time-based split needs "
                        f"more than the {validation_days} validation day(s)")
    return Split(trips[~is_valid].reset_index(drop=True), trips[is_valid].reset_index(drop=True))


def model_inputs(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The served signature's inputs, built as the worker builds them (``edml.columns``)."""
    return input_columns(SIGNATURE).from_frame(frame)


def _dataset(inputs: dict[str, np.ndarray], target: np.ndarray, batch: int,
             shuffle_seed: int | None) -> tf.data.Dataset:
    data = tf.data.Dataset.from_tensor_slices(({k: inputs[k] for k in INPUTS}, target))
    if shuffle_seed is not None:
        data = data.shuffle(len(target), seed=shuffle_seed, reshuffle_each_iteration=True)
    return data.batch(batch).prefetch(tf.data.AUTOTUNE)


def fit(split: Split, zones: ZoneTable, *, epochs: int, batch_size: int, learning_rate: float,
        seed: int, callbacks: list[keras.callbacks.Callback] | None = None,
        start_from: keras.Model | None = None) -> TrainResult:
    """A seeded training run: from scratch, or continuing from ``start_from``'s weights (a
    warm start keeps its normalisation statistics, so it fits a few weeks of trips without
    forgetting what its months taught it)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    train_x, valid_x = model_inputs(split.train), model_inputs(split.valid)
    train_y = np.log(split.train["duration_seconds"].to_numpy(np.float32))
    valid_y = np.log(split.valid["duration_seconds"].to_numpy(np.float32))

    if start_from is not None:
        model = keras.models.clone_model(start_from)
        model.set_weights(start_from.get_weights())
    else:
        # Normalization statistics of the numeric features, from the training rows only.
        numeric = TripFeatures(zones.lat.tolist(), zones.lon.tolist(),
                               zones.area_ids().tolist())(train_x)["numeric"].numpy()
        # floored: a feature nearly constant in training must not be blown up when serving
        model = build_model(zones, numeric.mean(axis=0), np.maximum(numeric.var(axis=0), 1e-4),
                            float(train_y.mean()))
    steps = epochs * int(np.ceil(len(train_y) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(steps, 1),
                                                      alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.Huber(delta=0.1),  # log seconds; robust to odd trips
                  metrics=[keras.metrics.MeanAbsoluteError(name="mae_log")])
    # (keras warns that it will not shuffle a tf.data input: the dataset shuffles itself)
    warnings.filterwarnings("ignore", message=".*shuffle=True.*", category=UserWarning)
    history: Any = model.fit(
        _dataset(train_x, train_y, batch_size, seed),
        validation_data=_dataset(valid_x, valid_y, 4096, None),
        epochs=epochs, verbose=0, callbacks=callbacks or [],
    )
    return TrainResult(model, {k: [float(v) for v in vs] for k, vs in history.history.items()},
                       len(history.epoch))
