"""Retrainer settings (``EDML_RETRAIN_*``), with the shared Kafka, topic, storage and
registry settings inside."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from edml.settings import KafkaSettings, RegistrySettings, StorageSettings, TopicSettings

__all__ = ["RetrainSettings"]


class RetrainSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDML_RETRAIN_", frozen=True,
                                      populate_by_name=True)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    group_id: str = "edml-retrainer"  # its consumer group on the model-events topic
    work_dir: Path = Path(".edml/retrain")  # each request's model is trained under here
    validation_days: int = Field(default=3, ge=1)  # the window's latest days validate
    # trip files to train from instead of the topics (paths, globs, URLs, tlc:...), for
    # topics whose retention is shorter than the requested window
    data: tuple[str, ...] = ()
    epochs: int = Field(default=6, ge=1)
    batch_size: int = Field(default=256, ge=16)  # a few weeks of trips: smaller steps
    quick: bool = False  # one epoch on a few thousand rows: tests and the demo
    # backtest each candidate against the champion on its validation days before publishing
    backtest: bool = True
    git_commit: str | None = Field(
        default=None,
        validation_alias=AliasChoices("EDML_RETRAIN_GIT_COMMIT", "CI_COMMIT_SHA", "GITHUB_SHA"),
    )
