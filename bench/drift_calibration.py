"""Where the drift thresholds come from: the detectors' findings on the shared samples'
validation months (2019-09..10) and on 2020-01..08, with the model ``edml train`` ships.

    .venv/bin/python bench/drift_calibration.py [--model DIR]

The trips of each period are scored by the model, counted hour by hour of event time by
the workers' monitor (``services.drift``) (requests at their pickup hour, actuals at their
dropoff hour) and judged by the controller's watch (``controller.drift``) with the default
policy, as the stream would: no broker in between, the same code. Prints every finding
and each period's MAE and bias per month. The targets (issue 12): nothing on 2019-09..10
nor on 2020-01..02, and a finding within 7 event-time days of the 2020-03-15 onset.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from controller.drift import DriftPolicy, VersionWatch
from edml.event_time import MS_PER_DAY
from edml.profile import Profile
from edml.savedmodel import load_savedmodel
from edml.trip_data import default_trip_data
from services.drift import DriftMonitor
from trainer.data import clean, load_trips, parse_months, resolve_sources
from trainer.fit import model_inputs

PERIODS = ("2019-09..2019-10", "2020-01..2020-08")


def _trips(months: str) -> pd.DataFrame:
    wanted = parse_months(months)
    sources = resolve_sources([str(default_trip_data().folder)], wanted)
    trips, _ = clean(load_trips(sources, Path(".edml/tlc-cache")), wanted)
    return trips.sort_values("pickup_datetime").reset_index(drop=True)


def _replay(model_dir: Path, trips: pd.DataFrame) -> None:
    profile, model = Profile.read(model_dir), load_savedmodel(model_dir)
    if profile is None:
        raise SystemExit(f"{model_dir} has no reference profile: train it with this edml")
    columns = model_inputs(trips)
    predicted = model.predict(columns)
    pickup_day = columns["pickup_datetime"] // MS_PER_DAY
    monitor, watch = DriftMonitor("trips", "calibration"), VersionWatch(DriftPolicy(), profile)
    requests = trips.groupby(trips["pickup_datetime"].dt.floor("h")).indices
    actuals = trips.groupby(trips["dropoff_datetime"].dt.floor("h")).indices
    for hour in sorted(set(requests) | set(actuals)):
        if hour in requests:
            rows = requests[hour]
            monitor.requests("v1", profile, {k: v[rows] for k, v in columns.items()},
                             predicted[rows])
        for i in actuals.get(hour, []):
            monitor.outcome("v1", int(pickup_day[i]), float(predicted[i]),
                            float(trips["duration_seconds"].iat[i]))
        for window in monitor.drain():
            watch.add(window)
        for f in watch.findings():
            print(f"  {f.window_end}  {f.detector:<28} {f.statistic:8.3f} > {f.threshold:<6g}"
                  f" ({f.window_start}..{f.window_end}; {f.detail})")
    error = (predicted - trips["duration_seconds"].to_numpy()) / 60
    by_month = pd.DataFrame({"month": trips["month"].astype(str), "error": error}).groupby(
        "month")["error"]
    print(pd.DataFrame({"MAE min": by_month.apply(lambda e: np.abs(e).mean()),
                        "bias min": by_month.mean(), "trips": by_month.size()}
                       ).round(2).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a SavedModel with its profile (default: "
                        "train the model `edml train` ships, months 2018-01..2019-10)")
    args = parser.parse_args()
    model_dir = args.model
    if model_dir is None:
        import tempfile

        from trainer.pipeline import train
        from trainer.settings import TrainSettings
        model_dir = train(TrainSettings(out=Path(tempfile.mkdtemp(prefix="edml-drift-")))
                          ).model_dir
    for months in PERIODS:
        print(f"\n{months} (onset of the 2020 shift: {date(2020, 3, 15)})")
        _replay(model_dir, _trips(months))


if __name__ == "__main__":
    main()
