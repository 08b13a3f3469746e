"""Which keyed model a trip belongs to: the family's routing field (``ModelMetadata.routed_by``,
published with the fleet model) turned into a key per trip, the same way for training, for
publishing and for serving.

Keys are short safe names, as they become path segments of the keyed model's artifact:
a zone id as text (``"132"``), a borough in lower case with dashes (``"staten-island"``),
a vendor id as text. A trip without a value (no vendor given) has the key ``""``, which no
model has: the fleet model answers it.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from importlib import resources

import numpy as np

from edml.errors import ModelError

__all__ = ["FIELDS", "check_field", "route_keys", "rows_of_key", "source_column"]

_ZONES = 265  # TLC zone ids run 1..265
# routing field -> the request column it is derived from
FIELDS: Mapping[str, str] = {
    "pickup_zone_id": "pickup_zone_id",
    "dropoff_zone_id": "dropoff_zone_id",
    "pickup_borough": "pickup_zone_id",
    "dropoff_borough": "dropoff_zone_id",
    "vendor_id": "vendor_id",
}


def check_field(field: str) -> str:
    if field not in FIELDS:
        raise ModelError(f"routing field {field!r}: expected one of {', '.join(FIELDS)}")
    return field


def source_column(field: str) -> str:
    """The request column a routing field reads."""
    return FIELDS[check_field(field)]


def _borough_keys() -> np.ndarray:
    """The key of each zone id's borough (index 0 and ids the table lacks: "unknown")."""
    keys = np.full(_ZONES + 1, "unknown", dtype=object)
    table = resources.files("edml.sample_trips").joinpath("taxi_zone_lookup.csv")
    with table.open("r", encoding="utf-8") as rows:
        for row in csv.DictReader(rows):
            zone = int(row["LocationID"])
            if 1 <= zone <= _ZONES and row["Borough"]:
                keys[zone] = row["Borough"].strip().lower().replace(" ", "-")
    return keys


_ZONE_KEYS = np.array([""] + [str(zone) for zone in range(1, _ZONES + 1)], dtype=object)
_BOROUGH_KEYS: np.ndarray | None = None  # read once, on first use


def route_keys(field: str, column: np.ndarray) -> np.ndarray:
    """The key of every trip (an object array of str) from its ``source_column(field)``
    values as integers (a missing value: -1 or 0)."""
    global _BOROUGH_KEYS
    values = np.asarray(column, dtype=np.int64)
    if check_field(field).endswith("_borough"):
        if _BOROUGH_KEYS is None:
            _BOROUGH_KEYS = _borough_keys()
        table = _BOROUGH_KEYS
    elif field.endswith("_zone_id"):
        table = _ZONE_KEYS
    else:  # vendor ids are few and small, but any integer is a key
        return np.array([str(v) if v > 0 else "" for v in values.tolist()], dtype=object)
    inside = (values >= 1) & (values <= _ZONES)
    keys: np.ndarray = np.where(inside, table[np.where(inside, values, 0)], "")
    return keys.astype(object)


def rows_of_key(field: str, column: np.ndarray, key: str) -> np.ndarray:
    """Which trips ``field`` gives ``key`` (a boolean mask), from their
    ``source_column(field)`` values: the trips its keyed model answers."""
    mask: np.ndarray = route_keys(field, column) == key
    return mask
