"""Warm start against scratch for a retrain: which does better on the months after?

    .venv/bin/python bench/warm_start.py

The champion ``edml train`` ships (2018-01..2019-10) is retrained on three windows of
spring 2020 around the shift (the trips of each window, its last 3 days validating, as the
retrainer splits them): from scratch (the trainer's own settings) and warm, from the
champion's weights (``trainer.fit.fit(start_from=...)``, learning rate 5e-4). Prints the
MAE in minutes per month of 2020-01..08 of each, and of the frozen champion.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from edml.quiet import quiet_tensorflow
from edml.trip_data import default_trip_data
from trainer.data import clean, load_trips, parse_months, resolve_sources
from trainer.export import predict_seconds
from trainer.fit import fit, model_inputs, split_by_days, split_by_time
from trainer.settings import TrainSettings
from trainer.zones import load_zones

WINDOWS = (("2020-03-05", "2020-03-25"), ("2020-03-11", "2020-03-31"),
           ("2020-03-18", "2020-04-08"))


def _trips(months: str) -> pd.DataFrame:
    wanted = parse_months(months)
    sources = resolve_sources([default_trip_data().trips], wanted)
    trips, _ = clean(load_trips(sources, Path(".edml/tlc-cache")), wanted)
    return trips.sort_values("pickup_datetime").reset_index(drop=True)


def main() -> None:
    quiet_tensorflow()
    defaults = TrainSettings()
    zones = load_zones(default_trip_data().zones)
    year = _trips("2020-01..2020-08")

    def by_month(model: object) -> pd.Series:
        error = np.abs(predict_seconds(model, model_inputs(year)) - year["duration_seconds"])
        return (error / 60).groupby(year["month"].astype(str)).mean()

    champion = fit(split_by_time(_trips(defaults.months), defaults.validation_months), zones,
                   epochs=defaults.epochs, batch_size=defaults.batch_size,
                   learning_rate=defaults.learning_rate, seed=defaults.seed).model
    rows = {"frozen champion": by_month(champion)}
    for start, end in WINDOWS:
        day = year["pickup_datetime"].dt.normalize()
        window = year[(day >= start) & (day <= end)].reset_index(drop=True)
        split = split_by_days(window, 3)
        label = f"{start[5:]}..{end[5:]} ({len(split.train):,} trips)"
        for name, learning_rate, start_from in (
                ("scratch", defaults.learning_rate, None),
                ("warm", defaults.warm_learning_rate, champion)):
            model = fit(split, zones, epochs=defaults.epochs, batch_size=256,
                        learning_rate=learning_rate, seed=defaults.seed,
                        start_from=start_from).model
            rows[f"{name:<7} {label}"] = by_month(model)
    print("MAE in minutes per month of 2020 (the window's own months in the middle)")
    print(pd.DataFrame(rows).T.round(2).to_string())


if __name__ == "__main__":
    main()
