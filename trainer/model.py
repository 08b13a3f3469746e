"""The wide & deep trip-duration model, with every feature computed inside it.

Inputs are the ``TripRequest`` fields, nothing else: pickup wall-clock time (int64 ms),
pickup and dropoff zone ids, passenger count. The model predicts log(duration in seconds);
``duration_seconds`` turns that into seconds for serving.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from edml.samples import SIGNATURE
from trainer.zones import ZONE_COUNT, ZoneTable

__all__ = ["INPUTS", "LOG_DURATION_BOUNDS", "TripFeatures", "build_model", "duration_seconds"]

# Model inputs: the TripRequest fields of the served signature, each a 1-D int64 tensor.
INPUTS = tuple(spec.name for spec in SIGNATURE.inputs)
_MS_PER_HOUR, _MS_PER_DAY = 3_600_000, 86_400_000
_DAYS_PER_YEAR = 365.2425
_EARTH_RADIUS_MILES = 3958.8
_CROSS_BINS = 1 << 15  # hash buckets of each crossed feature in the wide part
# log seconds: predictions are kept within 10 s .. 6 h, so every output is finite and positive
LOG_DURATION_BOUNDS = (math.log(10.0), math.log(6 * 3600.0))


@keras.saving.register_keras_serializable("edml")
class TripFeatures(layers.Layer):  # type: ignore[misc]  # keras is untyped
    """Raw request fields -> model features, in TensorFlow ops (so they ship in the model).

    The zone centroid table is a constant lookup held as non-trainable weights.
    """

    def __init__(self, lat: list[float], lon: list[float], area: list[int],
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lat_values, self._lon_values = list(lat), list(lon)
        self._area_values = list(area)

    def build(self, input_shape: Any) -> None:
        n = len(self._lat_values)
        self.lat = self.add_weight(shape=(n,), trainable=False, name="centroid_lat",
                                   initializer=keras.initializers.Constant(self._lat_values))
        self.lon = self.add_weight(shape=(n,), trainable=False, name="centroid_lon",
                                   initializer=keras.initializers.Constant(self._lon_values))
        self.area = self.add_weight(shape=(n,), trainable=False, name="zone_area", dtype="int64",
                                    initializer=keras.initializers.Constant(self._area_values))

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        return config | {"lat": self._lat_values, "lon": self._lon_values,
                                       "area": self._area_values}

    def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        ms = tf.cast(tf.reshape(inputs["pickup_datetime"], [-1]), tf.int64)
        pickup = tf.clip_by_value(tf.cast(tf.reshape(inputs["pickup_zone_id"], [-1]),
                                          tf.int64), 0, ZONE_COUNT)
        dropoff = tf.clip_by_value(tf.cast(tf.reshape(inputs["dropoff_zone_id"], [-1]),
                                           tf.int64), 0, ZONE_COUNT)
        passengers = tf.clip_by_value(tf.cast(tf.reshape(inputs["passenger_count"], [-1]),
                                              tf.int64), 0, 9)
        days = tf.math.floordiv(ms, _MS_PER_DAY)
        hour = tf.math.floormod(tf.math.floordiv(ms, _MS_PER_HOUR), 24)
        weekday = tf.math.floormod(days + 3, 7)  # 1970-01-01 was a Thursday; Monday = 0
        day_fraction = tf.cast(tf.math.floormod(ms, _MS_PER_DAY), tf.float32) / _MS_PER_DAY
        year_fraction = tf.cast(tf.math.floormod(tf.cast(days, tf.float64), _DAYS_PER_YEAR)
                                / _DAYS_PER_YEAR, tf.float32)
        lat1, lon1 = tf.gather(self.lat, pickup), tf.gather(self.lon, pickup)
        lat2, lon2 = tf.gather(self.lat, dropoff), tf.gather(self.lon, dropoff)
        distance = _haversine_miles(lat1, lon1, lat2, lon2)
        two_pi = 2 * math.pi
        numeric = tf.stack([
            distance, tf.math.log1p(distance), lat2 - lat1, lon2 - lon1, lat1, lon1, lat2, lon2,
            tf.sin(two_pi * day_fraction), tf.cos(two_pi * day_fraction),
            tf.sin(two_pi * year_fraction), tf.cos(two_pi * year_fraction),
        ], axis=1)
        # years since 2019-01-01: a linear drift of durations (traffic slowed year on year)
        trend = (tf.cast(days, tf.float32) - 17_897.0) / _DAYS_PER_YEAR
        return {
            "trend": tf.reshape(trend, [-1, 1]),
            "pickup": pickup, "dropoff": dropoff, "passengers": passengers,
            "hour_of_week": weekday * 24 + hour, "numeric": numeric,
            "pickup_area": tf.gather(self.area, pickup),
            "dropoff_area": tf.gather(self.area, dropoff),
        }


def _haversine_miles(lat1: tf.Tensor, lon1: tf.Tensor, lat2: tf.Tensor,
                     lon2: tf.Tensor) -> tf.Tensor:
    rad = math.pi / 180
    dlat, dlon = (lat2 - lat1) * rad, (lon2 - lon1) * rad
    a = tf.sin(dlat / 2) ** 2 + tf.cos(lat1 * rad) * tf.cos(lat2 * rad) * tf.sin(dlon / 2) ** 2
    return 2 * _EARTH_RADIUS_MILES * tf.asin(tf.sqrt(tf.clip_by_value(a, 0.0, 1.0)))


def _linear(ids: tf.Tensor, size: int, name: str) -> tf.Tensor:
    """A linear term on a one-hot feature: one weight per id (an embedding of width 1)."""
    return layers.Flatten()(layers.Embedding(size, 1, embeddings_initializer="zeros",
                                             name=f"wide_{name}")(ids))


def build_model(zones: ZoneTable, numeric_mean: np.ndarray, numeric_var: np.ndarray,
                log_duration_mean: float) -> keras.Model:
    """Wide (linear on one-hot and hashed crosses) + deep (embeddings and normalized numerics),
    summed into log(duration seconds)."""
    inputs = {name: keras.Input(shape=(), dtype="int64", name=name) for name in INPUTS}
    features = TripFeatures(zones.lat.tolist(), zones.lon.tolist(), zones.area_ids().tolist(),
                            name="features")(inputs)
    pickup, dropoff = features["pickup"], features["dropoff"]
    how, passengers = features["hour_of_week"], features["passengers"]

    def cross(a: tf.Tensor, b: tf.Tensor, name: str) -> tf.Tensor:
        return layers.HashedCrossing(_CROSS_BINS, name=f"cross_{name}")((a, b))

    zones_n = ZONE_COUNT + 1
    wide = layers.Add(name="wide")([
        _linear(pickup, zones_n, "pickup"), _linear(dropoff, zones_n, "dropoff"),
        _linear(how, 168, "hour_of_week"), _linear(passengers, 10, "passengers"),
        _linear(cross(pickup, dropoff, "route"), _CROSS_BINS, "route"),
        _linear(cross(features["pickup_area"], how, "pickup_area_time"), _CROSS_BINS,
                "pickup_area_time"),
        _linear(cross(features["dropoff_area"], how, "dropoff_area_time"), _CROSS_BINS,
                "dropoff_area_time"),
        layers.Dense(1, use_bias=False, kernel_initializer="zeros", name="wide_trend")(
            features["trend"]),
    ])

    def embed(ids: tf.Tensor, size: int, width: int, name: str) -> tf.Tensor:
        return layers.Flatten()(layers.Embedding(size, width, name=f"embed_{name}")(ids))

    numeric = layers.Normalization(mean=numeric_mean, variance=numeric_var,
                                   name="numeric_norm")(features["numeric"])
    deep = layers.Concatenate(name="deep_input")([
        embed(pickup, zones_n, 16, "pickup"), embed(dropoff, zones_n, 16, "dropoff"),
        embed(how, 168, 8, "hour_of_week"), embed(passengers, 10, 2, "passengers"), numeric,
    ])
    for width in (256, 128, 64):
        deep = layers.Dense(width, activation="relu")(deep)
    deep = layers.Dense(1, name="deep_out")(deep)
    log_duration = layers.Add(name="sum")([wide, deep])
    log_duration = layers.Rescaling(1.0, offset=log_duration_mean, name="log_duration")(
        layers.Flatten()(log_duration))
    return keras.Model(inputs, layers.Flatten(name="log_seconds")(log_duration),
                       name="trip_duration_wide_deep")


def duration_seconds(log_seconds: tf.Tensor) -> tf.Tensor:
    """The served output: seconds, finite and positive for any input."""
    return tf.exp(tf.clip_by_value(tf.reshape(log_seconds, [-1]), *LOG_DURATION_BOUNDS))
