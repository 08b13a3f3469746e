"""A worker rides out the world's failures: a stalled broker. Each test runs its own local
stack, since it stops the broker."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edml.codec import Codec
from edml.contracts import TripRequest
from edml.kafka import flush_or_raise, producer
from edml.local import LocalStack, StackSettings
from edml.settings import KafkaSettings
from model_publisher.publish import publish
from model_publisher.settings import PublisherSettings
from tests.services.workers import Worker, all_outcomes, read_outputs, real_requests

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
        sending = threading.Thread(target=_send_steadily, args=(kafka, topics.records,
                                                                requests, 200.0))
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


def _send_steadily(kafka: KafkaSettings, topic: str, requests: list[TripRequest],
                   rate: float) -> None:
    prod, codec = producer(kafka, **{"delivery.timeout.ms": 300_000}), Codec()
    started = time.monotonic()
    for i, request in enumerate(requests):
        prod.produce(topic, key=request.trip_id.encode(), value=codec.encode(request))
        prod.poll(0)
        time.sleep(max(0.0, (i + 1) / rate - (time.monotonic() - started)))
    flush_or_raise(prod, 300)
