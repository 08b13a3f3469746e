"""Fixtures of the worker tests: a publisher on this test's topics, and a pool of workers
that are all stopped after the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edml.settings import KafkaSettings, StorageSettings, TopicSettings
from model_publisher.settings import PublisherSettings
from tests.services.workers import Workers


@pytest.fixture
def publisher(kafka: KafkaSettings, topics: TopicSettings, gcs: StorageSettings
              ) -> PublisherSettings:
    return PublisherSettings(kafka=kafka, topics=topics, storage=gcs, git_commit="abc1234")


@pytest.fixture
def workers(kafka: KafkaSettings, topics: TopicSettings, gcs: StorageSettings,
            tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(kafka, topics, gcs, tmp_path)
    yield pool
    for worker in pool.started:
        worker.stop()
