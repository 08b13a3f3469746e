"""Settings come from EDML_* variables, once, and Kafka security reaches every client."""

from __future__ import annotations

import certifi
import pytest
from pydantic import ValidationError

from edml.kafka import client_config, consumer, producer
from edml.settings import KafkaSettings, StorageSettings, TopicSettings
from services.settings import ScoringSettings


def test_kafka_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDML_KAFKA_BOOTSTRAP", "b1:9093,b2:9093")
    monkeypatch.setenv("EDML_KAFKA_SESSION_TIMEOUT_MS", "3000")
    settings = KafkaSettings()
    assert settings.bootstrap == "b1:9093,b2:9093" and settings.session_timeout_ms == 3000


def test_sasl_and_tls_pass_through_to_the_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDML_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("EDML_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("EDML_KAFKA_SASL_USERNAME", "edml")
    monkeypatch.setenv("EDML_KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("EDML_KAFKA_SSL_CA_LOCATION", certifi.where())
    settings = KafkaSettings()
    config = client_config(settings)
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"]) == ("edml", "s3cret")
    assert config["ssl.ca.location"] == certifi.where()
    assert "s3cret" not in repr(settings)  # a secret is never printed
    producer(settings)  # librdkafka accepts the configuration
    consumer(settings).close()


def test_a_part_composes_the_shared_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDML_TOPIC_RECORDS", "my.requests")
    monkeypatch.setenv("EDML_SCORING_BATCH_SIZE", "250")
    settings = ScoringSettings()
    assert settings.topics.records == "my.requests" and settings.batch_size == 250


@pytest.mark.parametrize(("cls", "name", "value"), [
    (KafkaSettings, "EDML_KAFKA_SECURITY_PROTOCOL", "TLS"),
    (TopicSettings, "EDML_TOPIC_PARTITIONS", "0"),
    (StorageSettings, "EDML_STORAGE_TIMEOUT_S", "-1"),
])
def test_a_setting_that_cannot_work_fails_at_start(
    monkeypatch: pytest.MonkeyPatch, cls: type, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        cls()
