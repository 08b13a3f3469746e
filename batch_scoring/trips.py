"""History to score, one source file at a time: TLC trip files (cleaned exactly as the
trainer cleans them) or files of ``TripRequest`` rows (Parquet or Avro container files,
as a warehouse exports them), each with its actual duration where known."""

from __future__ import annotations

from pathlib import Path

import fastavro
import pandas as pd

from edml.contracts import TripRequest
from edml.errors import DataError
from trainer.data import clean, load_trips

__all__ = ["REQUEST_FIELDS", "TRIP_COLUMNS", "read_source"]

# the request's fields as a TripRequest has them, and the actual duration where known
REQUEST_FIELDS = tuple(TripRequest.__dataclass_fields__)
TRIP_COLUMNS = (*REQUEST_FIELDS, "duration_seconds")
_NEEDED = ("trip_id", "pickup_datetime", "pickup_zone_id", "dropoff_zone_id",
           "passenger_count")


def read_source(source: str, cache_dir: Path, months: list[pd.Period] | None = None
                ) -> pd.DataFrame:
    """One source's trips as request columns (``TRIP_COLUMNS``), in pickup order; pickups
    outside ``months`` left out. DataError for a file that is neither kind."""
    name = Path(source).name.lower()
    if name.endswith(".avro"):
        frame = _requests(_read_avro(Path(source)), source)
    elif name.endswith(".parquet") and "pickup_zone_id" in _parquet_columns(source):
        frame = _requests(pd.read_parquet(source), source)
    else:  # a TLC trip file: read and cleaned as for training
        raw = load_trips([source], cache_dir)
        wanted = months or sorted(raw["file_month"].dropna().unique())
        frame = clean(raw, list(wanted))[0]
    if months is not None:
        frame = frame[frame["pickup_datetime"].dt.to_period("M").isin(months)]
    for column in TRIP_COLUMNS:
        if column not in frame.columns:
            frame = frame.assign(**{column: None})
    return frame[list(TRIP_COLUMNS)].sort_values(
        "pickup_datetime", kind="stable").reset_index(drop=True)


def _parquet_columns(source: str) -> list[str]:
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(source).names)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {source}: {exc}") from exc


def _read_avro(path: Path) -> pd.DataFrame:
    try:
        with path.open("rb") as file:
            return pd.DataFrame.from_records(list(fastavro.reader(file)))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def _requests(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in _NEEDED if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: a requests file needs the TripRequest fields "
                        f"{', '.join(missing)}")
    return frame.assign(pickup_datetime=pd.to_datetime(frame["pickup_datetime"]))
