"""What ``edml score`` reads: TLC trip files, cleaned as for training, and TripRequest rows
in Parquet or Avro container files; anything else is a clear error."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import fastavro
import pandas as pd
import pytest

from batch_scoring.trips import TRIP_COLUMNS, read_source
from edml.codec import load_schemas
from edml.errors import DataError
from edml.trip_data import default_trip_data

REQUESTS = [
    {"trip_id": "a", "pickup_datetime": datetime(2020, 3, 1, 8, 30), "pickup_zone_id": 161,
     "dropoff_zone_id": 236, "passenger_count": 1, "vendor_id": 2,
     "estimated_distance_miles": None},
    {"trip_id": "b", "pickup_datetime": datetime(2020, 2, 29, 23, 5), "pickup_zone_id": 48,
     "dropoff_zone_id": 79, "passenger_count": 2, "vendor_id": None,
     "estimated_distance_miles": 1.5},
]


def test_a_tlc_file_is_cleaned_as_for_training(tmp_path: Path) -> None:
    trips = read_source(str(default_trip_data().month("2019-10")), tmp_path)
    assert list(trips.columns) == list(TRIP_COLUMNS)
    assert trips["pickup_datetime"].is_monotonic_increasing
    assert trips["duration_seconds"].between(60, 3 * 3600).all()
    assert trips["pickup_zone_id"].between(1, 263).all() and len(trips) > 9000


def test_an_avro_file_of_trip_requests_is_read_with_unknown_durations(tmp_path: Path) -> None:
    with (tmp_path / "requests.avro").open("wb") as out:
        fastavro.writer(out, load_schemas()["edml.TripRequest"], REQUESTS)
    trips = read_source(str(tmp_path / "requests.avro"), tmp_path)
    assert list(trips["trip_id"]) == ["b", "a"]  # in pickup order
    assert trips["duration_seconds"].isna().all()
    assert trips.loc[trips["trip_id"] == "a", "pickup_zone_id"].item() == 161


def test_a_parquet_file_of_trip_requests_keeps_its_durations_and_months_filter(
        tmp_path: Path) -> None:
    pd.DataFrame(REQUESTS).assign(duration_seconds=[600.0, 420.0]).to_parquet(
        tmp_path / "requests.parquet")
    march = read_source(str(tmp_path / "requests.parquet"), tmp_path, [pd.Period("2020-03")])
    assert list(march["trip_id"]) == ["a"] and march["duration_seconds"].item() == 600.0


def test_what_is_neither_kind_is_a_clear_error(tmp_path: Path) -> None:
    pd.DataFrame({"trip_id": ["a"], "pickup_zone_id": [1]}).to_parquet(tmp_path / "half.parquet")
    with pytest.raises(DataError, match="needs the TripRequest fields pickup_datetime"):
        read_source(str(tmp_path / "half.parquet"), tmp_path)
    (tmp_path / "trips.txt").write_text("hello")
    with pytest.raises(DataError, match=r"not a \.parquet or \.csv trip file"):
        read_source(str(tmp_path / "trips.txt"), tmp_path)
