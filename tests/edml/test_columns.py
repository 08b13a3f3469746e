"""The one request -> tensor mapping: derived from a model's signature, the same from
decoded records, from request objects and from a trainer's frame."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from edml.codec import Codec
from edml.columns import input_columns
from edml.contracts import ModelSignature, TensorSpec, TripRequest
from edml.errors import ModelError
from edml.samples import SIGNATURE, smoke_requests


def test_records_requests_and_frames_give_the_same_columns() -> None:
    requests = smoke_requests()
    columns = input_columns(SIGNATURE)
    codec = Codec()
    records = [codec.decode_record(codec.encode(r), TripRequest.SCHEMA) for r in requests]
    frame = pd.DataFrame([r.to_avro() for r in requests])
    from_records, from_requests = columns.from_records(records), columns.from_requests(requests)
    from_frame = columns.from_frame(frame)
    for name in ("pickup_datetime", "pickup_zone_id", "dropoff_zone_id", "passenger_count"):
        assert from_records[name].dtype == np.int64
        assert (from_records[name] == from_requests[name]).all()
        assert (from_records[name] == from_frame[name]).all()


def test_a_pickup_is_fed_as_its_new_york_wall_clock_milliseconds() -> None:
    request = TripRequest("t", datetime(2019, 10, 14, 8, 30), 161, 236, 1)
    (ms,) = input_columns(SIGNATURE).from_requests([request])["pickup_datetime"]
    assert ms == (datetime(2019, 10, 14, 8, 30) - datetime(1970, 1, 1)).total_seconds() * 1000


def test_a_model_taking_fewer_inputs_in_other_dtypes_is_fed_exactly_those() -> None:
    signature = dataclasses.replace(SIGNATURE, inputs=(TensorSpec("pickup_zone_id", "float32"),
                                                       TensorSpec("passenger_count", "int32")))
    columns = input_columns(signature).from_requests(smoke_requests())
    assert set(columns) == {"pickup_zone_id", "passenger_count"}
    assert columns["pickup_zone_id"].dtype == np.float32
    assert columns["passenger_count"].dtype == np.int32


def test_a_signature_the_requests_cannot_feed_has_no_columns() -> None:
    signature = ModelSignature("serving_default", (TensorSpec("weather", "float32"),),
                               TensorSpec("duration_seconds", "float32"))
    with pytest.raises(ModelError, match="'weather' is not a TripRequest field"):
        input_columns(signature)
