"""A trip's key, from the family's routing field: the same for training and serving."""

from __future__ import annotations

import numpy as np
import pytest

from edml.errors import ModelError
from edml.routing import route_keys, source_column


def test_zone_keys_are_the_zone_ids_as_text_and_outside_ids_have_none() -> None:
    keys = route_keys("pickup_zone_id", np.array([132, 1, 265, 0, 300]))
    assert keys.tolist() == ["132", "1", "265", "", ""]


def test_borough_keys_come_from_the_tlc_zone_table() -> None:
    keys = route_keys("dropoff_borough", np.array([132, 1, 5, 161, 264, 0]))
    assert keys.tolist() == ["queens", "ewr", "staten-island", "manhattan", "unknown", ""]
    assert source_column("dropoff_borough") == "dropoff_zone_id"


def test_a_missing_vendor_has_no_key() -> None:
    assert route_keys("vendor_id", np.array([2, 0, -1, 1])).tolist() == ["2", "", "", "1"]


def test_an_unknown_routing_field_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ModelError, match=r"routing field 'zone'.*pickup_borough"):
        route_keys("zone", np.array([1]))
