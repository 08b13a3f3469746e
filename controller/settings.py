"""Rollout-controller settings (``EDML_CONTROLLER_*``), with the shared Kafka, topic and
registry settings inside."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from edml.settings import KafkaSettings, RegistrySettings, TopicSettings

__all__ = ["ControllerSettings"]


class ControllerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDML_CONTROLLER_", frozen=True)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    # seconds one poll waits for news; a decision follows the evidence that completes it
    # within about this much
    poll_s: float = Field(default=0.2, gt=0)
    name: str = "rollout-controller"  # names it in the model events it writes
