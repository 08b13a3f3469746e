"""Trainer settings (``EDML_TRAIN_*``); every one is also a ``edml train`` option."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["TrainSettings"]


class TrainSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDML_TRAIN_", frozen=True)

    # trip files: paths, globs, http(s) URLs, or tlc:YYYY-MM..YYYY-MM (the TLC's monthly files)
    data: tuple[str, ...] = ()
    # zone table: taxi_zone_centroids.csv, or the zone polygons as GeoJSON (.geojson[.gz])
    zones: Path | None = None
    months: str = "2018-01..2019-10"  # first..last pickup month used
    validation_months: int = Field(default=2, ge=1)  # the latest N months validate
    out: Path = Path(".edml/model")
    epochs: int = Field(default=6, ge=1)
    batch_size: int = Field(default=1024, ge=16)
    learning_rate: float = Field(default=2e-3, gt=0)
    # a retrain's warm start from the champion: lower, so a few weeks refine, not replace
    warm_learning_rate: float = Field(default=5e-4, gt=0)
    seed: int = 42
    quick: bool = False  # a few thousand rows and one epoch, for tests and the demo
    quick_rows: int = Field(default=6000, ge=100)
    cache_dir: Path = Path(".edml/tlc-cache")  # downloaded TLC files
    # a model per key of this routing field (edml.routing) beside the fleet model
    per: str | None = None
    # a key needs this many training trips for a model of its own (fewer: the fleet's)
    min_key_trips: int = Field(default=2000, ge=100)
    jobs: int = Field(default=2, ge=1)  # processes training keyed models at once
