"""The one scoring function both engines run, a source file at a time: its trips, each
version's columns built from the version's signature (``edml.columns``, as the stream
builds them), one model call per slice, the answers kept only where they are durations
(``edml.savedmodel.usable``, as the stream keeps them). Its output file is the same
bytes whichever engine ran it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from batch_scoring.trips import read_source
from batch_scoring.versions import Versions
from edml.columns import input_columns
from edml.contracts import ModelMetadata
from edml.loader import ModelLoader
from edml.savedmodel import LoadedModel, Predictor, usable
from edml.settings import StorageSettings

__all__ = ["OUTPUT_SCHEMA", "Plan", "SourceResult", "part_name", "predict_trips", "score_source"]

OUTPUT_SCHEMA = pa.schema([
    ("trip_id", pa.string()),
    ("pickup_datetime", pa.timestamp("ms")),  # New York wall clock, as in the contracts
    ("model_version", pa.string()),
    ("predicted_duration_seconds", pa.float64()),  # null where the model gave no duration
    ("actual_duration_seconds", pa.float64()),  # null where unknown
])
_SLICE = 65_536  # rows per model call: a bounded tensor whatever the file's size


@dataclass(frozen=True)
class Plan:
    """Everything a scoring process needs, and nothing it cannot be sent (Spark pickles
    this to its executors)."""

    versions: Versions
    storage: StorageSettings
    cache_dir: Path  # where each process keeps the artifacts it fetched
    out: Path
    months: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SourceResult:
    source: str
    rows: int  # trips read
    scored: int  # trips with a version to score them (the others predate every version)


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


_models: dict[tuple[str, str], LoadedModel] = {}  # per process: a version loads once


def _model(plan: Plan, metadata: ModelMetadata) -> LoadedModel:
    key = (metadata.storage_uri, metadata.version)
    if key not in _models:
        loader = ModelLoader(plan.storage, plan.cache_dir)
        _models[key] = loader.load(metadata).model
    return _models[key]


def score_source(plan: Plan, index: int, source: str) -> SourceResult:
    """Score one source into ``plan.out``/``part_name(index)``."""
    months = [pd.Period(m, "M") for m in plan.months] if plan.months else None
    trips = read_source(source, plan.cache_dir / "trips", months)
    picked = plan.versions.pick(trips["pickup_datetime"])
    tables = [_scored(trips[picked == i], _model(plan, metadata), metadata.version)
              for i, metadata in enumerate(plan.versions.metadata) if (picked == i).any()]
    table = pa.concat_tables(tables) if tables else OUTPUT_SCHEMA.empty_table()
    plan.out.mkdir(parents=True, exist_ok=True)
    target = plan.out / part_name(index)
    partial = target.with_name(target.name + ".part")
    pq.write_table(table, partial)
    partial.rename(target)  # whole or absent: a rerun never reads half a part
    return SourceResult(source, len(trips), int((picked >= 0).sum()))


def predict_trips(trips: pd.DataFrame, model: Predictor) -> np.ndarray:
    """Per trip, the model's duration in seconds, NaN where it gave none."""
    columns = input_columns(model.signature)
    seconds = np.empty(len(trips), dtype=np.float64)
    for start in range(0, len(trips), _SLICE):
        part = trips.iloc[start:start + _SLICE]
        seconds[start:start + len(part)] = model.predict(columns.from_frame(part))
    return np.where(usable(seconds), seconds, np.nan)


def _scored(trips: pd.DataFrame, model: LoadedModel, version: str) -> pa.Table:
    seconds = predict_trips(trips, model)
    return pa.table({
        "trip_id": trips["trip_id"].astype(str).to_numpy(),
        "pickup_datetime": trips["pickup_datetime"].to_numpy().astype("datetime64[ms]"),
        "model_version": np.full(len(trips), version, dtype=object),
        "predicted_duration_seconds": pa.array(seconds, from_pandas=True),
        "actual_duration_seconds": pa.array(trips["duration_seconds"].to_numpy(np.float64),
                                            from_pandas=True),
    }, schema=OUTPUT_SCHEMA)
