"""Fixtures shared by every tier.

One real local stack (Tansu broker + GCS emulator) per test session, started on first use;
every test that uses it gets its own uuid-named topics, so tests never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edml.kafka import ensure_topics, topic_specs
from edml.local import LocalStack, StackSettings
from edml.settings import KafkaSettings, StorageSettings, TopicSettings
from model_publisher.settings import PublisherSettings
from tests.leaks import children_of
from tests.services.workers import Workers


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's shell must never change a result."""
    for name in list(os.environ):
        if name.startswith("EDML_") or name == "STORAGE_EMULATOR_HOST":
            monkeypatch.delenv(name)


@pytest.fixture(scope="session", autouse=True)
def _no_process_left_behind() -> Iterator[None]:
    """Fails the session if any process a test started is still alive at the end."""
    before = set(children_of(os.getpid()))
    yield
    left = {pid for pid in set(children_of(os.getpid())) - before
            if not _interpreters_own(pid)}
    assert not left, f"processes left behind by the tests: {sorted(left)}"


def _interpreters_own(pid: int) -> bool:
    """multiprocessing's resource tracker (started by a process pool, as ``edml train
    --per``'s): one per interpreter, it exits with it, and holds no port."""
    try:
        return b"multiprocessing.resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    # Read here, before the autouse fixture clears it: EDML_KAFKA_BOOTSTRAP points the
    # tests at an external cluster; otherwise the stack starts Tansu.
    settings = StackSettings(storage="gcs", bucket="edml-test")
    with LocalStack(settings) as running:
        yield running


@pytest.fixture
def kafka(stack: LocalStack) -> KafkaSettings:
    return stack.kafka_settings()


@pytest.fixture
def topics(kafka: KafkaSettings) -> TopicSettings:
    """Topics of this test alone, created on the session's broker."""
    suffix = uuid.uuid4().hex[:10]
    names = TopicSettings(
        records=f"records-{suffix}", predictions=f"predictions-{suffix}",
        shadow_predictions=f"shadow-{suffix}",
        actuals=f"actuals-{suffix}", dead_letters=f"dead-letters-{suffix}",
        models=f"models-{suffix}", model_events=f"model-events-{suffix}",
        evaluations=f"evaluations-{suffix}", partitions=2,
    )
    ensure_topics(kafka, topic_specs(names))
    return names


@pytest.fixture(scope="session")
def quick_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real SavedModel from quick training on real trips, trained once."""
    from trainer.pipeline import train
    from trainer.settings import TrainSettings

    out = tmp_path_factory.mktemp("quick-model")
    return train(TrainSettings(quick=True, quick_rows=3000, out=out)).model_dir


@pytest.fixture(scope="session")
def slower_model(quick_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``quick_model`` answering 10 minutes more for every trip: a known worse version."""
    from trainer.variants import adding_seconds

    return adding_seconds(quick_model, tmp_path_factory.mktemp("slower-model") / "model",
                          600.0)


@pytest.fixture
def gcs(stack: LocalStack) -> StorageSettings:
    """Storage settings for a fresh folder of this test in the emulator's bucket."""
    assert stack.storage_endpoint is not None
    return StorageSettings(
        uri=f"{stack.storage_uri}/{uuid.uuid4().hex[:10]}", endpoint=stack.storage_endpoint,
        timeout_s=10.0,
    )


@pytest.fixture
def publisher(kafka: KafkaSettings, topics: TopicSettings, gcs: StorageSettings
              ) -> PublisherSettings:
    """Publishes to this test's topics and storage folder."""
    return PublisherSettings(kafka=kafka, topics=topics, storage=gcs, git_commit="abc1234")


@pytest.fixture
def workers(kafka: KafkaSettings, topics: TopicSettings, gcs: StorageSettings,
            tmp_path: Path) -> Iterator[Workers]:
    """Real scoring workers on this test's topics, every one stopped after the test."""
    pool = Workers(kafka, topics, gcs, tmp_path)
    yield pool
    for worker in pool.started:
        worker.stop()
