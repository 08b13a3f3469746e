"""Start and stop the local stack as one context manager."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from pydantic_settings import BaseSettings, SettingsConfigDict

from edml.errors import StackError
from edml.kafka import ensure_topics, topic_specs
from edml.local.broker import TansuBroker, prove_round_trip
from edml.local.gcs import GcsEmulator
from edml.logs import event, get_logger
from edml.settings import KafkaSettings, StorageSettings, TopicSettings

__all__ = ["LocalStack", "StackSettings"]

log = get_logger(__name__)


class StackSettings(BaseSettings):
    """How the local stack finds or starts its parts (``EDML_STACK_*``).

    ``kafka``: ``tansu`` starts the bundled broker; ``testcontainers`` starts a Kafka
    container (needs a Docker engine); ``external`` uses ``EDML_KAFKA_BOOTSTRAP`` as it is.
    When ``EDML_KAFKA_BOOTSTRAP`` is set and ``kafka`` is left at ``auto``, nothing starts.
    ``storage``: ``file`` (a directory) or ``gcs`` (the GCS emulator).
    """

    model_config = SettingsConfigDict(env_prefix="EDML_STACK_", frozen=True)

    kafka: Literal["auto", "tansu", "testcontainers", "external"] = "auto"
    storage: Literal["file", "gcs"] = "file"
    bucket: str = "edml-models"
    workdir: Path | None = None


@dataclass
class LocalStack:
    """Real infrastructure on loopback; ``with LocalStack() as stack:`` stops it on any exit."""

    settings: StackSettings = field(default_factory=StackSettings)
    topics: TopicSettings = field(default_factory=TopicSettings)
    bootstrap: str = ""
    storage_uri: str = ""
    storage_endpoint: str | None = None
    workdir: Path = field(default_factory=Path)
    _kafka: KafkaSettings | None = None
    _broker: TansuBroker | None = None
    _container: Any = None
    _gcs: GcsEmulator | None = None
    _own_workdir: bool = False

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()

    def start(self) -> None:
        if self.settings.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="edml-stack-"))
            self._own_workdir = True
        else:
            self.workdir = self.settings.workdir
            self.workdir.mkdir(parents=True, exist_ok=True)
        self._start_kafka()
        self._start_storage()
        event(log, "stack.ready", bootstrap=self.bootstrap, storage=self.storage_uri,
              workdir=str(self.workdir))

    def _start_kafka(self) -> None:
        mode = self.settings.kafka
        external = "EDML_KAFKA_BOOTSTRAP" in os.environ
        if mode == "external" or (mode == "auto" and external):
            if not external:
                raise StackError("EDML_STACK_KAFKA=external needs EDML_KAFKA_BOOTSTRAP")
            # a cluster of the user's: its own settings, security included
            self._kafka = KafkaSettings()
        else:
            if mode == "testcontainers":
                bootstrap = self._start_container()
            else:
                self._broker = TansuBroker.start(self.workdir)
                bootstrap = self._broker.bootstrap
            # A short session suits a local broker: a group join takes ~2 s instead of
            # half of a 45 s default.
            self._kafka = KafkaSettings(
                bootstrap=bootstrap, session_timeout_ms=3_000, heartbeat_interval_ms=500,
                max_poll_interval_ms=10_000, request_timeout_s=10.0,
            )
        self.bootstrap = self._kafka.bootstrap
        kafka = self._kafka
        prove_round_trip(kafka)
        ensure_topics(kafka, topic_specs(self.topics))

    def _start_container(self) -> str:
        try:
            from testcontainers.kafka import KafkaContainer
        except ImportError as exc:
            raise StackError("EDML_STACK_KAFKA=testcontainers needs testcontainers") from exc
        try:
            self._container = KafkaContainer().with_kraft().start()
        except Exception as exc:  # docker client errors: no engine, no image
            raise StackError(f"cannot start a Kafka container: {exc}") from exc
        return str(self._container.get_bootstrap_server())

    def _start_storage(self) -> None:
        if self.settings.storage == "gcs":
            self._gcs = GcsEmulator.start(self.workdir, self.settings.bucket)
            self.storage_uri = f"gs://{self.settings.bucket}/models"
            self.storage_endpoint = self._gcs.endpoint
        else:
            models = self.workdir / "models"
            models.mkdir(exist_ok=True)
            self.storage_uri = models.resolve().as_uri()

    def stop(self) -> None:
        """Stop everything this stack started; safe to call twice."""
        if self._gcs is not None:
            self._gcs.stop()
            self._gcs = None
        if self._broker is not None:
            self._broker.stop()
            self._broker = None
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.stop()
            self._container = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._own_workdir = False

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        """The child processes this stack runs now (for leak checks)."""
        return [p.process for p in (self._broker, self._gcs) if p is not None]

    def kafka_settings(self) -> KafkaSettings:
        if self._kafka is None:
            raise StackError("the stack is not started")
        return self._kafka

    def storage_settings(self) -> StorageSettings:
        return StorageSettings(uri=self.storage_uri, endpoint=self.storage_endpoint)

    def env(self) -> dict[str, str]:
        """``EDML_*`` variables that point a child process (a worker, a CLI) at this stack."""
        kafka = self.kafka_settings()
        env = {
            "EDML_KAFKA_BOOTSTRAP": kafka.bootstrap,
            "EDML_KAFKA_SESSION_TIMEOUT_MS": str(kafka.session_timeout_ms),
            "EDML_KAFKA_HEARTBEAT_INTERVAL_MS": str(kafka.heartbeat_interval_ms),
            "EDML_KAFKA_MAX_POLL_INTERVAL_MS": str(kafka.max_poll_interval_ms),
            "EDML_STORAGE_URI": self.storage_uri,
        }
        if self.storage_endpoint:
            env["EDML_STORAGE_ENDPOINT"] = self.storage_endpoint
        return env | self.topics.as_env()
