"""The one mapping from trip requests to a model's inputs, derived from its signature.

A model names its inputs; each is the ``TripRequest`` field of the same name, converted to
the input's dtype, datetimes as New York wall-clock milliseconds since 1970. The scoring
batch, the smoke test and the trainer all build their columns here, so a model is fed the
same way where it is trained, where it is checked and where it serves, and a model that
takes other fields (or fewer) is fed what it asks for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from edml.contracts import ModelSignature, TripRequest
from edml.signature import check_signature, request_field_types

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["InputColumns", "input_columns"]

_EPOCH = datetime(1970, 1, 1)
_MILLISECOND = timedelta(milliseconds=1)


@dataclass(frozen=True)
class _Input:
    name: str
    dtype: np.dtype[Any]
    wall_clock_ms: bool  # a wall-clock Avro timestamp, fed as its milliseconds


@dataclass(frozen=True)
class InputColumns:
    """How one signature's inputs are built from requests, in any of their shapes."""

    inputs: tuple[_Input, ...]

    def from_records(self, records: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """Requests as the codec decodes them (datetimes naive, New York wall clock)."""
        columns: dict[str, np.ndarray] = {}
        for spec in self.inputs:
            # a datetime less the epoch, per value: numpy's own conversion of Python
            # datetimes is five times slower
            columns[spec.name] = np.array(
                [(record[spec.name] - _EPOCH) // _MILLISECOND for record in records]
                if spec.wall_clock_ms else [record[spec.name] for record in records],
                dtype=spec.dtype)
        return columns

    def from_avro_values(self, records: Sequence[Mapping[str, Any]]
                         ) -> dict[str, np.ndarray]:
        """Requests decoded with their logical types left as Avro values (the scoring
        batch's): a wall-clock timestamp is already its milliseconds."""
        return {spec.name: np.array([record[spec.name] for record in records], spec.dtype)
                for spec in self.inputs}

    def from_requests(self, requests: Sequence[TripRequest]) -> dict[str, np.ndarray]:
        return self.from_records([request.to_avro() for request in requests])

    def from_frame(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """A trainer's frame, one column per request field (datetimes as datetime64)."""
        return {spec.name: (frame[spec.name].to_numpy().astype("datetime64[ms]")
                            .astype(np.int64).astype(spec.dtype) if spec.wall_clock_ms
                            else frame[spec.name].to_numpy(spec.dtype))
                for spec in self.inputs}


def _numpy_dtype(tf_dtype: str) -> np.dtype[Any]:
    return np.dtype(object) if tf_dtype == "string" else np.dtype(tf_dtype)


@cache
def input_columns(signature: ModelSignature) -> InputColumns:
    """The columns ``signature`` takes; ModelError if the requests cannot feed it."""
    check_signature(signature)
    fields = request_field_types()
    return InputColumns(tuple(
        _Input(spec.name, _numpy_dtype(spec.dtype),
               isinstance(fields[spec.name], dict)
               and fields[spec.name].get("logicalType") == "local-timestamp-millis")
        for spec in signature.inputs))
