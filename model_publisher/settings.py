"""Publisher settings: the shared Kafka, topic, storage and registry settings, plus its own
(``EDML_PUBLISH_*``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from edml.settings import KafkaSettings, RegistrySettings, StorageSettings, TopicSettings

__all__ = ["PublisherSettings"]


class PublisherSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDML_PUBLISH_", frozen=True,
                                      populate_by_name=True)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    # the commit the model was trained from; GitLab and GitHub CI set theirs already
    git_commit: str | None = Field(
        default=None,
        validation_alias=AliasChoices("EDML_PUBLISH_GIT_COMMIT", "CI_COMMIT_SHA", "GITHUB_SHA"),
    )
