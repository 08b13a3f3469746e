"""``edml train``: its options, each also settable as ``EDML_TRAIN_<OPTION>``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edml.quiet import quiet_tensorflow

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    from trainer.pipeline import train
    from trainer.settings import TrainSettings

    given: dict[str, Any] = {
        key: value for key, value in vars(args).items()
        if key in TrainSettings.model_fields and value is not None
    }
    if "data" in given:
        given["data"] = tuple(given["data"])
    train(TrainSettings(**given))
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "train", help="train the trip-duration model and export it as a SavedModel",
        description="Train the wide & deep trip-duration model on TLC trips, validate it on "
        "the latest months against two baselines, and write OUT/saved_model (with "
        "edml_model.json), OUT/report.html and OUT/metrics.json. Every option can also be "
        "set as EDML_TRAIN_<OPTION>.",
    )
    parser.add_argument(
        "--data", action="append", metavar="SOURCE",
        help="trip files, repeatable: a path, a folder of trip files, a glob "
        "('trips/*.parquet'), an http(s) URL, or tlc:YYYY-MM..YYYY-MM for the TLC's "
        "published monthly yellow-taxi files (downloaded once into --cache-dir). Parquet or "
        "CSV with the TLC's column names. Default: the shared samples in "
        "../shared/data/nyc-taxi where present, else the sample of real trips shipped with "
        "edml")
    parser.add_argument("--zones", type=Path,
                        help="zone table: taxi_zone_centroids.csv, or the TLC zone polygons as "
                        "GeoJSON (.geojson or .geojson.gz). Default: the zone table beside "
                        "the default trips")
    parser.add_argument("--months", help="first..last pickup month to use (default "
                        "2018-01..2019-10; later months bring the 2020 drift)")
    parser.add_argument("--validation-months", type=int,
                        help="the latest N months are the validation set (default 2)")
    parser.add_argument("--out", type=Path, help="output folder (default .edml/model)")
    parser.add_argument("--epochs", type=int, help="training epochs (default 6)")
    parser.add_argument("--batch-size", type=int, help="training batch size (default 1024)")
    parser.add_argument("--learning-rate", type=float,
                        help="peak learning rate of the cosine schedule (default 0.002)")
    parser.add_argument("--seed", type=int, help="random seed; same seed, same model "
                        "(default 42)")
    parser.add_argument("--quick", action="store_true", default=None,
                        help="a few thousand rows and one epoch, for tests and the demo")
    parser.add_argument("--quick-rows", type=int,
                        help="training rows in --quick mode (default 6000)")
    parser.add_argument("--cache-dir", type=Path,
                        help="where downloaded TLC files are kept (default .edml/tlc-cache)")
    parser.add_argument("--per", metavar="FIELD",
                        help="also train a model per key of this routing field "
                        "(pickup_zone_id, dropoff_zone_id, pickup_borough, dropoff_borough): "
                        "the fleet model goes to OUT/fleet, each key's to OUT/keys/KEY, and "
                        "OUT/keys.json compares each with the fleet model on the key's "
                        "validation trips (edml publish --set OUT publishes the set)")
    parser.add_argument("--min-key-trips", type=int,
                        help="training trips a key needs for a model of its own (default "
                        "2000; fewer: the fleet model answers it)")
    parser.add_argument("--jobs", type=int,
                        help="processes training keyed models at once (default 2)")
    parser.set_defaults(handler=_run)
