"""The reference profile of a trained version (``edml.profile``): its training months'
inputs and predictions in the monitored bins, and its validation errors."""

from __future__ import annotations

import numpy as np
import pandas as pd

from edml.profile import ErrorProfile, Profile
from trainer.fit import model_inputs
from trainer.zones import ZoneTable

__all__ = ["build_profile"]


def build_profile(train: pd.DataFrame, train_predicted_s: np.ndarray, valid: pd.DataFrame,
                  valid_predicted_s: np.ndarray, zones: ZoneTable) -> Profile:
    """From the model's own predictions: the training months' histograms are what live
    traffic is compared with, the validation months' errors what live errors are."""
    names = sorted(set(zones.borough))
    areas = (*names, "Manhattan 14th-59th St", "Manhattan above 59th St")  # area_ids' order
    error = valid_predicted_s - valid["duration_seconds"].to_numpy(np.float64)
    empty = Profile(zones.area_ids(), areas, zones.lat, zones.lon, {},
                    ErrorProfile(0, 0.0, 0.0, 0.0))
    return Profile(
        area_of_zone=empty.area_of_zone, areas=areas, zone_lat=zones.lat,
        zone_lon=zones.lon, reference=empty.counts(model_inputs(train), train_predicted_s),
        validation=ErrorProfile(len(error), float(np.abs(error).mean()),
                                float(error.mean()), float(np.abs(error).std())),
        data_window=(str(train["pickup_datetime"].min().date()),
                     str(train["pickup_datetime"].max().date())))
