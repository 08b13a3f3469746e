"""Rollout-controller settings (``EDML_CONTROLLER_*``), with the shared Kafka, topic and
registry settings inside."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from edml.settings import KafkaSettings, RegistrySettings, StorageSettings, TopicSettings

__all__ = ["ControllerSettings"]


class ControllerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDML_CONTROLLER_", frozen=True)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    # where the versions' reference profiles are read from (read access to the artifacts)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    # seconds one poll waits for news; a decision follows the evidence that completes it
    # within about this much
    poll_s: float = Field(default=0.2, gt=0)
    name: str = "rollout-controller"  # names it in the model events it writes
    # drift, in event-time days: the days compared with the reference; a retrain request's
    # window (the days before the first finding, and the settle days after it, waited
    # for); how long after its window a request stays open unanswered
    drift_window_days: int = Field(default=7, ge=1)
    retrain_window_days: int = Field(default=14, ge=1)
    retrain_settle_days: int = Field(default=7, ge=0)
    retrain_timeout_days: int = Field(default=14, ge=1)
