"""The TLC taxi-zone table: a centroid and a borough per zone id, for the distance feature
and for the evaluation by borough."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edml.errors import DataError

__all__ = ["ZONE_COUNT", "ZoneTable", "load_zones"]

ZONE_COUNT = 265  # TLC zone ids run 1..265


@dataclass(frozen=True)
class ZoneTable:
    """Arrays indexed by zone id (0..265; index 0 unused). Zones without geometry (264,
    265, and any the file lacks) get the mean centroid, so every id has a finite distance."""

    lat: np.ndarray
    lon: np.ndarray
    borough: np.ndarray  # str per zone id
    source: str

    def area_ids(self) -> np.ndarray:
        """An integer per zone id for its area: its borough, with Manhattan split at 14th
        and 59th Street latitudes (downtown, midtown, uptown), where traffic differs most."""
        names = sorted(set(self.borough))
        ids = np.array([names.index(b) for b in self.borough], dtype=np.int64)
        manhattan = self.borough == "Manhattan"
        ids[manhattan & (self.lat > 40.737)] = len(names)
        ids[manhattan & (self.lat > 40.765)] = len(names) + 1
        return ids

    def borough_of(self, zone_ids: np.ndarray) -> np.ndarray:
        boroughs: np.ndarray = self.borough[np.clip(zone_ids, 0, ZONE_COUNT)]
        return boroughs


def _ring_centroid(ring: list[list[float]]) -> tuple[float, float, float]:
    """Signed area and centroid of a polygon ring (shoelace), in lon/lat degrees."""
    x, y = np.asarray(ring, dtype=float).T[:2]
    cross = x[:-1] * y[1:] - x[1:] * y[:-1]
    area = cross.sum() / 2
    if area == 0:
        return 0.0, float(x.mean()), float(y.mean())
    return area, float(((x[:-1] + x[1:]) * cross).sum() / (6 * area)), \
        float(((y[:-1] + y[1:]) * cross).sum() / (6 * area))


def _feature_centroid(geometry: dict[str, Any]) -> tuple[float, float]:
    polygons = geometry["coordinates"]
    if geometry["type"] == "Polygon":
        polygons = [polygons]
    parts = [_ring_centroid(ring) for polygon in polygons for ring in polygon]
    weights = np.array([a for a, _, _ in parts])
    lons, lats = np.array([c[1] for c in parts]), np.array([c[2] for c in parts])
    total = weights.sum()  # holes have the opposite sign and subtract
    return float((lats * weights).sum() / total), float((lons * weights).sum() / total)


def _from_geojson(path: Path) -> pd.DataFrame:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as file:
        features = json.load(file)["features"]
    rows = []
    for feature in features:
        props = feature["properties"]
        lat, lon = _feature_centroid(feature["geometry"])
        rows.append({"LocationID": int(props["LocationID"]),
                     "Borough": props.get("borough") or props.get("Borough"),
                     "centroid_lat": lat, "centroid_lon": lon})
    return pd.DataFrame(rows)


def load_zones(path: Path) -> ZoneTable:
    """From ``taxi_zone_centroids.csv`` or the zone polygons as GeoJSON (``.geojson[.gz]``)."""
    try:
        if ".geojson" in path.name:
            table = _from_geojson(path)
        else:
            table = pd.read_csv(path, keep_default_na=False, na_values={"centroid_lat": [""],
                                                                        "centroid_lon": [""]})
    except FileNotFoundError as exc:
        raise DataError(f"no zone table at {path}") from exc
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read the zone table {path}: {exc}") from exc
    missing = {"LocationID", "Borough", "centroid_lat", "centroid_lon"} - set(table.columns)
    if missing:
        raise DataError(f"{path} lacks the zone columns {', '.join(sorted(missing))}")
    table = table.groupby("LocationID").first()  # the TLC lists a few zones twice
    lat = np.full(ZONE_COUNT + 1, np.nan)
    lon = np.full(ZONE_COUNT + 1, np.nan)
    borough = np.full(ZONE_COUNT + 1, "Unknown", dtype=object)
    ids = table.index.to_numpy()
    ids = ids[(ids >= 1) & (ids <= ZONE_COUNT)]
    lat[ids] = pd.to_numeric(table.loc[ids, "centroid_lat"], errors="coerce")
    lon[ids] = pd.to_numeric(table.loc[ids, "centroid_lon"], errors="coerce")
    borough[ids] = table.loc[ids, "Borough"].replace("", "Unknown").to_numpy()
    if np.isnan(lat[1:]).all():
        raise DataError(f"{path} has no zone coordinates")
    lat[np.isnan(lat)] = np.nanmean(lat[1:])
    lon[np.isnan(lon)] = np.nanmean(lon[1:])
    return ZoneTable(lat, lon, borough, str(path))
