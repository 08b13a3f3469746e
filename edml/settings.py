"""Settings shared by every part, read from ``EDML_*`` environment variables.

Each part composes these into its own settings object, built once at start and passed down;
nothing reads the environment at import time. Defaults run the embedded stack on this machine.

| variable | default | meaning |
|---|---|---|
| EDML_KAFKA_BOOTSTRAP | 127.0.0.1:9092 | bootstrap servers |
| EDML_KAFKA_SECURITY_PROTOCOL | PLAINTEXT | PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL |
| EDML_KAFKA_SASL_MECHANISM | (none) | PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 |
| EDML_KAFKA_SASL_USERNAME / _PASSWORD | (none) | SASL credentials |
| EDML_KAFKA_SSL_CA_LOCATION | (none) | CA bundle for TLS |
| EDML_KAFKA_SESSION_TIMEOUT_MS | 10000 | consumer session; a join is held ~half of it |
| EDML_KAFKA_HEARTBEAT_INTERVAL_MS | 1000 | consumer heartbeat |
| EDML_KAFKA_MAX_POLL_INTERVAL_MS | 60000 | also bounds a rebalance waiting on a dead member |
| EDML_KAFKA_REQUEST_TIMEOUT_S | 15 | seconds before a broker counts as unreachable |
| EDML_SCHEMA_REGISTRY_URL | (none) | Confluent registry; unset: single-object encoding |
| EDML_TOPIC_RECORDS ... | edml.trip-requests ... | topic names, see ``TopicSettings`` |
| EDML_TOPIC_PARTITIONS | 4 | partitions of the records/predictions/actuals/dead-letter topics |
| EDML_STORAGE_URI | file://./.edml/models | model artifacts: file://DIR or gs://BUCKET/PREFIX |
| EDML_STORAGE_PROJECT | (none) | GCP project for google-cloud-storage |
| EDML_STORAGE_ENDPOINT | (none) | a GCS emulator's http://HOST:PORT (tests) |
| EDML_STORAGE_TIMEOUT_S | 30 | bound on one storage call, retries included |
| EDML_STORAGE_ALLOWED_ROOTS | (none) | more roots, comma-separated, workers may load models from |
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from edml.errors import ConfigError

__all__ = [
    "KafkaSettings",
    "RegistrySettings",
    "StorageSettings",
    "TopicSettings",
    "config_error",
]


def _settings_classes(root: type[BaseSettings] = BaseSettings) -> dict[str, type[BaseSettings]]:
    found: dict[str, type[BaseSettings]] = {}
    for cls in root.__subclasses__():
        found[cls.__name__] = cls
        found |= _settings_classes(cls)
    return found


def config_error(exc: ValidationError) -> ConfigError:
    """One line naming each bad setting by its environment variable, with pydantic's reason:
    ``EDML_TOPIC_PARTITIONS=0: Input should be greater than or equal to 1``."""
    settings = _settings_classes().get(exc.title)
    prefix = str(settings.model_config.get("env_prefix", "")) if settings else ""
    problems = []
    for error in exc.errors(include_url=False):
        name = prefix + "__".join(str(part) for part in error["loc"]).upper()
        value = f"={error['input']!r}" if error["type"] != "missing" else ""
        problems.append(f"{name}{value}: {error['msg']}")
    return ConfigError("; ".join(problems))


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDML_KAFKA_", frozen=True)

    bootstrap: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    client_id: str = "edml"
    # milliseconds; the broker holds a group join for about half the session timeout
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=1_000, ge=100)
    # milliseconds; also the rebalance timeout a group waits for a member that went silent
    max_poll_interval_ms: int = Field(default=60_000, ge=5_000)
    # seconds a command waits for the broker before it calls it unreachable
    request_timeout_s: float = Field(default=15.0, gt=0)


class RegistrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDML_SCHEMA_REGISTRY_", frozen=True)

    url: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    ssl_ca_location: str | None = None  # CA bundle for an https registry
    timeout_s: float = Field(default=5.0, gt=0)  # seconds per registry request


class TopicSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDML_TOPIC_", frozen=True)

    records: str = "edml.trip-requests"
    predictions: str = "edml.trip-predictions"
    # predictions made but not served during a rollout: never read by consumers of the above
    shadow_predictions: str = "edml.trip-predictions.shadow"
    actuals: str = "edml.trips-completed"
    dead_letters: str = "edml.dead-letters"
    models: str = "edml.models"
    model_events: str = "edml.model-events"
    # the workers' rollout evidence, read by the rollout controller
    evaluations: str = "edml.evaluations"
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)

    def as_env(self) -> dict[str, str]:
        """These settings as the environment of another edml process."""
        return {f"EDML_TOPIC_{name.upper()}": str(value)
                for name, value in self.model_dump().items()}


class StorageSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDML_STORAGE_", frozen=True)

    uri: str = "file://./.edml/models"
    project: str | None = None
    # http://HOST:PORT of a GCS emulator; google-cloud-storage's own STORAGE_EMULATOR_HOST
    # works too
    endpoint: str | None = None
    # seconds a storage call may take, transient-error retries with backoff included
    timeout_s: float = Field(default=30.0, gt=0)
    # comma-separated storage URIs a worker may load from besides ``uri``: a model event
    # naming any other place is refused (anyone who can write the model topic could
    # otherwise point every worker at any path or bucket it can read)
    allowed_roots: str = ""

    @property
    def roots(self) -> tuple[str, ...]:
        return (self.uri, *(r.strip() for r in self.allowed_roots.split(",") if r.strip()))
