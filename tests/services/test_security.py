"""Security settings reach every client (confluent-kafka's and faust's), and a worker runs
end to end against a broker that speaks only TLS."""

from __future__ import annotations

import ssl
import uuid
from pathlib import Path

import faust
import pytest
from pydantic import SecretStr

from edml.kafka import admin, client_config, ensure_topics, topic_specs
from edml.settings import KafkaSettings, StorageSettings, TopicSettings
from model_publisher.publish import publish
from model_publisher.settings import PublisherSettings
from services.app import credentials
from tests.services.workers import Worker, all_outcomes, read_outputs, real_requests, send
from tests.tls import tls_broker


def test_sasl_ssl_settings_reach_the_confluent_clients_and_faust(tmp_path: Path) -> None:
    from tests.tls import make_certificates

    ca, _, _ = make_certificates(tmp_path)
    kafka = KafkaSettings(bootstrap="b:9093", security_protocol="SASL_SSL",
                          sasl_mechanism="SCRAM-SHA-512", sasl_username="svc",
                          sasl_password=SecretStr("s3cret"), ssl_ca_location=str(ca))
    config = client_config(kafka)
    assert {k: config[k] for k in ("security.protocol", "sasl.mechanism", "sasl.username",
                                   "sasl.password", "ssl.ca.location")} == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc", "sasl.password": "s3cret", "ssl.ca.location": str(ca)}
    sasl = credentials(kafka)
    assert isinstance(sasl, faust.SASLCredentials)
    assert (sasl.username, sasl.password, sasl.mechanism.value) == ("svc", "s3cret",
                                                                    "SCRAM-SHA-512")
    assert isinstance(sasl.ssl_context, ssl.SSLContext)
    assert sasl.ssl_context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(("protocol", "mechanism", "tls"), [
    ("PLAINTEXT", None, False), ("SSL", None, True), ("SASL_PLAINTEXT", "PLAIN", False),
    ("SASL_SSL", "PLAIN", True)])
def test_faust_gets_tls_exactly_when_the_protocol_says_so(
    protocol: str, mechanism: str | None, tls: bool,
) -> None:
    kafka = KafkaSettings(security_protocol=protocol, sasl_mechanism=mechanism,  # type: ignore[arg-type]
                          sasl_username="svc" if mechanism else None)
    given = credentials(kafka)
    if mechanism is None:
        assert isinstance(given, ssl.SSLContext) == tls and (given is None) == (not tls)
    else:
        assert isinstance(given, faust.SASLCredentials)
        assert isinstance(given.ssl_context, ssl.SSLContext) == tls


@pytest.mark.kafka
@pytest.mark.tf
def test_a_worker_scores_end_to_end_over_tls(
    quick_model: Path, tmp_path: Path,
) -> None:
    with tls_broker(tmp_path) as broker:
        kafka = KafkaSettings(bootstrap=broker.bootstrap, security_protocol="SSL",
                              ssl_ca_location=str(broker.ca), session_timeout_ms=3_000,
                              heartbeat_interval_ms=500, max_poll_interval_ms=10_000,
                              request_timeout_s=10.0)
        topics = TopicSettings(partitions=2)
        ensure_topics(kafka, topic_specs(topics))
        storage = StorageSettings(uri=(tmp_path / "models").as_uri())
        publish(quick_model, "trips", PublisherSettings(kafka=kafka, topics=topics,
                                                        storage=storage), version="v1")
        group = f"scoring-{uuid.uuid4().hex[:8]}"
        worker = Worker(kafka, topics, storage, tmp_path / "w1", group, extra_env={
            "EDML_KAFKA_SECURITY_PROTOCOL": "SSL", "EDML_KAFKA_SSL_CA_LOCATION": str(broker.ca)})
        worker.start()
        try:
            worker.wait_ready("v1")
            send(kafka, topics.records, real_requests(100))
            all_outcomes(kafka, topics, 100)
            assert len(read_outputs(kafka, topics).predictions) == 100
            # the one topic faust creates itself, named in the README's ACL list
            names = set(admin(kafka).list_topics(timeout=10).topics)
            assert f"{group}-worker-__assignor-__leader" in names
        finally:
            worker.stop()
