"""A version's reference profile: how its inputs, predictions and errors looked when it was
trained, and the one binning that both the trainer (reference) and the workers (live) use.

The trainer writes it into the artifact (``edml_profile.json``) and the model event names
it; a worker reads it from the downloaded artifact, counts live traffic into the same bins
and publishes the counts; the controller compares merged counts with the reference. The
profile carries everything binning needs (the zones' areas and centroids, the bin edges),
so a worker needs no zone table and a profile can never be binned differently from how it
was made.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edml.errors import ModelError

__all__ = ["FEATURES", "PROFILE_FILE", "ErrorProfile", "Profile"]

PROFILE_FILE = "edml_profile.json"
_FORMAT = 1
_MS_PER_HOUR, _MS_PER_DAY = 3_600_000, 86_400_000
_EARTH_RADIUS_MILES = 3958.8
# 0.1 .. 30 miles, log-spaced: short hops and airport runs each get their own bins
_DISTANCE_EDGES = tuple(float(x) for x in np.round(np.geomspace(0.1, 30.0, 15), 3))
# predicted minutes, log-spaced over what a taxi trip takes
_PREDICTION_EDGES = tuple(float(x) for x in np.round(np.geomspace(2.0, 120.0, 15), 2))
# what is monitored; each is a histogram over a fixed number of bins
FEATURES = ("pickup_area", "hour_of_week", "passenger_count", "centroid_distance",
            "prediction")


@dataclass(frozen=True)
class ErrorProfile:
    """The version's errors on its validation months, in seconds."""

    count: int
    mae: float
    bias: float  # mean of predicted - actual
    abs_error_sd: float


@dataclass(frozen=True)
class Profile:
    area_of_zone: np.ndarray  # zone id (0..265) -> area index
    areas: tuple[str, ...]
    zone_lat: np.ndarray
    zone_lon: np.ndarray
    reference: dict[str, np.ndarray]  # feature -> counts per bin (training months)
    validation: ErrorProfile
    data_window: tuple[str, str] = ("", "")
    distance_edges: tuple[float, ...] = _DISTANCE_EDGES
    prediction_edges: tuple[float, ...] = _PREDICTION_EDGES
    bins: dict[str, int] = field(init=False)
    # what binning depends on: two profiles equal here bin any rows alike
    binning: tuple[object, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "binning", (
            self.areas, self.distance_edges, self.prediction_edges,
            np.asarray(self.area_of_zone, np.int64).tobytes(),
            np.asarray(self.zone_lat, np.float64).tobytes(),
            np.asarray(self.zone_lon, np.float64).tobytes()))
        object.__setattr__(self, "bins", {
            "pickup_area": len(self.areas), "hour_of_week": 168, "passenger_count": 10,
            "centroid_distance": len(self.distance_edges) + 1,
            "prediction": len(self.prediction_edges) + 1})
        for name, counts in self.reference.items():
            if name not in self.bins or len(counts) != self.bins[name]:
                raise ModelError(f"profile feature {name!r}: {len(counts)} reference bins, "
                                 f"expected {self.bins.get(name, 'no such feature')}")

    # -- binning: the one implementation, for the reference and for live traffic ---------

    def bin_indices(self, columns: Mapping[str, np.ndarray],
                    predicted_seconds: np.ndarray) -> dict[str, np.ndarray]:
        """Per row, its bin of each feature. ``columns`` as ``edml.columns`` builds them
        (pickup_datetime in wall-clock ms)."""
        pickup_ms = np.asarray(columns["pickup_datetime"], dtype=np.int64)
        pickup = np.clip(np.asarray(columns["pickup_zone_id"], dtype=np.int64), 0,
                         len(self.area_of_zone) - 1)
        dropoff = np.clip(np.asarray(columns["dropoff_zone_id"], dtype=np.int64), 0,
                          len(self.area_of_zone) - 1)
        days = pickup_ms // _MS_PER_DAY
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
        hour = (pickup_ms % _MS_PER_DAY) // _MS_PER_HOUR
        miles = _haversine_miles(self.zone_lat[pickup], self.zone_lon[pickup],
                                 self.zone_lat[dropoff], self.zone_lon[dropoff])
        minutes = np.asarray(predicted_seconds, dtype=np.float64) / 60.0
        return {
            "pickup_area": self.area_of_zone[pickup],
            "hour_of_week": weekday * 24 + hour,
            "passenger_count": np.clip(np.asarray(columns["passenger_count"], dtype=np.int64),
                                       0, 9),
            "centroid_distance": np.searchsorted(self.distance_edges, miles, side="right"),
            "prediction": np.searchsorted(self.prediction_edges, minutes, side="right"),
        }

    def counts(self, columns: Mapping[str, np.ndarray],
               predicted_seconds: np.ndarray) -> dict[str, np.ndarray]:
        """Histograms of the rows: feature -> count per bin."""
        return {name: np.bincount(index, minlength=self.bins[name]).astype(np.int64)
                for name, index in self.bin_indices(columns, predicted_seconds).items()}

    # -- the file ------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "data_window": list(self.data_window),
            "areas": list(self.areas),
            "area_of_zone": self.area_of_zone.tolist(),
            "zone_lat": np.round(self.zone_lat, 5).tolist(),
            "zone_lon": np.round(self.zone_lon, 5).tolist(),
            "distance_edges_miles": list(self.distance_edges),
            "prediction_edges_minutes": list(self.prediction_edges),
            "reference_counts": {k: v.tolist() for k, v in self.reference.items()},
            "validation_errors_seconds": {
                "count": self.validation.count, "mae": self.validation.mae,
                "bias": self.validation.bias, "abs_error_sd": self.validation.abs_error_sd},
        }

    def write(self, directory: Path) -> Path:
        path = directory / PROFILE_FILE
        path.write_text(json.dumps(self.to_json()) + "\n")
        return path

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Profile:
        try:
            if data["format"] != _FORMAT:
                raise ModelError(f"profile format {data['format']}: this edml reads {_FORMAT}")
            errors = data["validation_errors_seconds"]
            return cls(
                area_of_zone=np.asarray(data["area_of_zone"], dtype=np.int64),
                areas=tuple(data["areas"]),
                zone_lat=np.asarray(data["zone_lat"], dtype=np.float64),
                zone_lon=np.asarray(data["zone_lon"], dtype=np.float64),
                reference={k: np.asarray(v, dtype=np.int64)
                           for k, v in data["reference_counts"].items()},
                validation=ErrorProfile(int(errors["count"]), float(errors["mae"]),
                                        float(errors["bias"]), float(errors["abs_error_sd"])),
                data_window=(str(data["data_window"][0]), str(data["data_window"][1])),
                distance_edges=tuple(data["distance_edges_miles"]),
                prediction_edges=tuple(data["prediction_edges_minutes"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"a malformed reference profile: {type(exc).__name__}: {exc}"
                             ) from exc

    @classmethod
    def read(cls, directory: Path) -> Profile | None:
        """The profile in an artifact folder; None for a version made without one."""
        path = directory / PROFILE_FILE
        if not path.is_file():
            return None
        try:
            return cls.from_json(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise ModelError(f"{path}: not JSON: {exc}") from exc


def _haversine_miles(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray,
                     lon2: np.ndarray) -> np.ndarray:
    rad = math.pi / 180
    dlat, dlon = (lat2 - lat1) * rad, (lon2 - lon1) * rad
    a = np.sin(dlat / 2) ** 2 + np.cos(lat1 * rad) * np.cos(lat2 * rad) * np.sin(dlon / 2) ** 2
    miles: np.ndarray = 2 * _EARTH_RADIUS_MILES * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return miles
