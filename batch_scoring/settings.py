"""Batch scoring settings (``EDML_SCORE_*``), with the shared Kafka, topic, storage and
registry settings inside. What to score and how comes from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from edml.settings import KafkaSettings, RegistrySettings, StorageSettings, TopicSettings

__all__ = ["ScoreSettings"]


class ScoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDML_SCORE_", frozen=True)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    model_name: str = "trip-duration"
    engine: Literal["local", "spark"] = "local"
    spark_master: str = "local[2]"
    cache_dir: Path = Path(".edml/score-cache")  # artifacts fetched, trip files downloaded
