"""A worker rides out the world's failures: a stalled broker (on a local stack of its own,
since the test stops it), a schema registry that fails or hangs."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edml.codec import Codec
from edml.kafka import flush_or_raise, producer
from edml.local import LocalStack, StackSettings
from edml.settings import KafkaSettings, RegistrySettings, TopicSettings
from model_publisher.publish import publish
from model_publisher.settings import PublisherSettings
from tests.registry_server import running_registry
from tests.services.workers import (
    Sender,
    Worker,
    Workers,
    all_outcomes,
    read_outputs,
    real_requests,
    wait_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.tf, pytest.mark.timeout(600)]

STALL_S = 60  # a broker failover routinely takes this long


@pytest.fixture
def own_stack() -> Iterator[LocalStack]:
    with LocalStack(StackSettings(storage="file")) as stack:
        yield stack


def test_a_worker_rides_out_a_60_s_broker_stall_and_loses_nothing(
    own_stack: LocalStack, quick_model: Path, tmp_path: Path,
) -> None:
    kafka, topics, storage = own_stack.kafka_settings(), own_stack.topics, \
        own_stack.storage_settings()
    publish(quick_model, "trips", PublisherSettings(kafka=kafka, topics=topics,
                                                    storage=storage), version="v1")
    worker = Worker(kafka, topics, storage, tmp_path / "w1", f"scoring-{uuid.uuid4().hex[:8]}")
    worker.start()
    try:
        worker.wait_ready("v1")
        requests = real_requests(16_000)
        # requests keep coming through the stall: a patient client's producer buffers them
        sending = Sender(kafka, topics.records, requests, 200.0, patience_s=300)
        sending.start()
        time.sleep(5)
        broker = own_stack.processes[0].pid
        os.kill(broker, signal.SIGSTOP)
        try:
            stalled_until = time.monotonic() + STALL_S
            while time.monotonic() < stalled_until:
                assert worker.process is not None and worker.process.poll() is None, \
                    f"the worker exited during the stall:\n{worker.log()}"
                assert worker.get("/healthz")[0] == 200
                time.sleep(2)
        finally:
            os.kill(broker, signal.SIGCONT)

        sending.join()
        all_outcomes(kafka, topics, len(requests))
        counts = read_outputs(kafka, topics).outcome_counts()
        assert set(counts) == {r.trip_id for r in requests}
        assert worker.process is not None and worker.process.poll() is None
    finally:
        worker.stop()


@pytest.mark.gcs
@pytest.mark.parametrize("fault", ["error", "slow"])
def test_records_wait_out_a_failing_schema_registry_and_none_becomes_a_dead_letter(
    fault: str, quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings,
) -> None:
    with running_registry() as registry:
        codec = Codec.from_settings(RegistrySettings(url=registry.url))
        requests = real_requests(200)
        prod = producer(kafka)
        for request in requests:  # Confluent-framed, schema id 1
            prod.produce(topics.records, key=request.trip_id.encode(),
                         value=codec.encode(request))
        flush_or_raise(prod, 30)
        registry.mode, registry.slow_s = fault, 30.0  # slow: far past the 2 s timeout
        publish(quick_model, "trips", publisher, version="v1")
        worker = workers.make("w1", extra_env={
            "EDML_SCHEMA_REGISTRY_URL": registry.url, "EDML_SCHEMA_REGISTRY_TIMEOUT_S": "2"})
        worker.start().wait_ready("v1")
        time.sleep(8)  # the records had time to go wrong, and must not have
        assert read_outputs(kafka, topics, codec).outcome_counts() == {}
        assert worker.metric('edml_dependency_failures_total{dependency="schema_registry"}') >= 1
        assert worker.process is not None and worker.process.poll() is None

        registry.mode = "ok"
        wait_for(lambda: len(read_outputs(kafka, topics, codec).outcome_counts()) >= 200, 90,
                 "every record scored once the registry is back")
        outputs = read_outputs(kafka, topics, codec)
        assert not outputs.dead_letters and len({p.trip_id for p in outputs.predictions}) == 200
