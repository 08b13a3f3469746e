"""``edml score``: history scored by one version, or as of each trip's pickup."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]


def _score(args: argparse.Namespace) -> int:
    from batch_scoring.run import score
    from batch_scoring.settings import ScoreSettings
    from edml.kafka import require_broker

    overrides = {key: value for key, value in (
        ("model_name", args.model), ("engine", args.engine), ("spark_master", args.master))
        if value is not None}
    settings = ScoreSettings(**overrides)
    require_broker(settings.kafka)  # the versions come from the model topic
    summary = score(settings, args.sources, args.out, args.version, args.months)
    print(f"{summary.scored:,} of {summary.rows:,} trips scored into {args.out}/part-*.parquet")
    for version, trips in summary.trips_by_version.items():
        mae = summary.mae_minutes.get(version)
        print(f"  {version}: {trips:,} trips" + (f", MAE {mae:.2f} min" if mae else ""))
    print(f"summary: {args.out / 'summary.json'}, report: {args.out / 'report.html'}")
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "score", help="score history (trip files) by one version, or as of each pickup",
        description="Score trips with the published SavedModels, through the same loader and "
        "request -> tensor mapping as the stream, so a trip scored here and on the stream by "
        "the same version gets the same number. Writes OUT/part-NNNNN.parquet (one per "
        "source: trip_id, pickup_datetime, model_version, predicted_duration_seconds, "
        "actual_duration_seconds), OUT/summary.json (MAE per version and month) and "
        "OUT/report.html. Settings: EDML_SCORE_* and the shared EDML_* variables.")
    parser.add_argument("sources", nargs="+", metavar="SOURCE",
                        help="trip files: TLC files (Parquet or CSV, paths, folders, globs, "
                        "URLs, tlc:YYYY-MM..YYYY-MM) or TripRequest rows (Parquet or Avro, "
                        "with duration_seconds where the actual is known)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", help="score every trip with this version")
    which.add_argument("--as-of", action="store_true",
                       help="score each trip with the champion at its pickup time, from the "
                       "model topic's history")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--months", help="only pickups in first..last month (2020-01..2020-03)")
    parser.add_argument("--model", help="model name (default EDML_SCORE_MODEL_NAME or "
                        "trip-duration)")
    parser.add_argument("--engine", choices=("local", "spark"),
                        help="local: this process (default); spark: Spark executors, one "
                        "source file a task")
    parser.add_argument("--master", help="Spark master (default local[2])")
    parser.set_defaults(handler=_score)
