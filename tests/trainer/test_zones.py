"""The zone table, from the TLC's centroid table or from the zone polygons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edml.errors import DataError
from trainer.zones import load_zones


def test_centroids_from_the_polygons_match_the_centroid_table(shared_data: Path) -> None:
    table = load_zones(shared_data / "taxi_zone_centroids.csv")
    polygons = load_zones(shared_data / "taxi_zones_wgs84.geojson.gz")
    miles_per_degree = 69.0
    assert np.abs(table.lat[1:264] - polygons.lat[1:264]).max() * miles_per_degree < 0.01
    assert np.abs(table.lon[1:264] - polygons.lon[1:264]).max() * miles_per_degree < 0.01


def test_every_zone_id_has_finite_coordinates_and_a_borough(trip_data: Path) -> None:
    zones = load_zones(trip_data / "taxi_zone_centroids.csv")
    assert np.isfinite(zones.lat[1:]).all() and np.isfinite(zones.lon[1:]).all()
    assert zones.borough[132] == "Queens"  # JFK Airport
    assert zones.borough[264] == "Unknown"


def test_a_table_without_coordinates_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "lookup.csv"
    path.write_text('"LocationID","Borough","Zone"\n1,"EWR","Newark Airport"\n')
    with pytest.raises(DataError, match="lacks the zone columns centroid_lat"):
        load_zones(path)


def test_a_missing_zone_table_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no zone table"):
        load_zones(tmp_path / "zones.csv")
