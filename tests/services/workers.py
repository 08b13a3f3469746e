"""Real scoring workers (``edml serve`` processes) on the session's local stack, and the
traffic the tests send them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edml.codec import Codec
from edml.contracts import DeadLetter, ModelEvent, TripCompleted, TripPrediction, TripRequest
from edml.errors import StackError
from edml.kafka import flush_or_raise, producer, read_partition
from edml.local.processes import free_port, spawn
from edml.settings import KafkaSettings, StorageSettings, TopicSettings
from model_publisher.publish import publish
from model_publisher.settings import PublisherSettings
from services.probe import readiness, wait_ready
from services.replay import replay_trips
from tests.faults import TcpProxy, proxy_to

CODEC = Codec()


def real_trips(n: int, prefix: str = "trip") -> list[tuple[TripRequest, TripCompleted]]:
    """Requests, and what actually happened, from real TLC trips of October 2019."""
    return replay_trips(n, prefix)


def real_requests(n: int, prefix: str = "trip") -> list[TripRequest]:
    return [request for request, _ in real_trips(n, prefix)]


def send(kafka: KafkaSettings, topic: str, requests: list[TripRequest] | list[TripCompleted],
         garbage: int = 0) -> None:
    prod = producer(kafka)
    for request in requests:
        prod.produce(topic, key=request.trip_id.encode(), value=CODEC.encode(request))
    for i in range(garbage):
        prod.produce(topic, key=f"garbage-{i}".encode(), value=b"\x00not avro " + bytes([i]))
    flush_or_raise(prod, 30)


def send_steadily(kafka: KafkaSettings, topic: str, requests: list[TripRequest], rate: float,
                  until: threading.Event | None = None, then_s: float = 1.0,
                  patience_s: float = 30.0) -> list[TripRequest]:
    """About ``rate`` requests a second, in order, through one producer: all of them, or,
    once ``until`` is set, ``then_s`` more seconds' worth. Returns what was sent. A patient
    client: its producer buffers for ``patience_s`` when the broker does not answer."""
    prod = producer(kafka, **{"delivery.timeout.ms": int(patience_s * 1000)})
    started, stop_at = time.monotonic(), float("inf")
    sent: list[TripRequest] = []
    for request in requests:
        prod.produce(topic, key=request.trip_id.encode(), value=CODEC.encode(request))
        prod.poll(0)
        sent.append(request)
        now = time.monotonic()
        if until is not None and until.is_set() and stop_at == float("inf"):
            stop_at = now + then_s
        if now >= stop_at:
            break
        time.sleep(max(0.0, len(sent) / rate - (now - started)))
    flush_or_raise(prod, patience_s)
    return sent


class Sender(threading.Thread):
    """``send_steadily`` in the background; ``sent`` once joined."""

    def __init__(self, kafka: KafkaSettings, topic: str, requests: list[TripRequest],
                 rate: float, until: threading.Event | None = None,
                 patience_s: float = 30.0) -> None:
        super().__init__(daemon=True)
        self._args = (kafka, topic, requests, rate, until)
        self._patience_s = patience_s
        self.sent: list[TripRequest] = []

    def run(self) -> None:
        self.sent = send_steadily(*self._args, patience_s=self._patience_s)


@dataclass
class Outputs:
    predictions: list[TripPrediction]
    dead_letters: list[DeadLetter]

    def outcome_counts(self) -> Counter[str]:
        """How many outcomes each request key got."""
        keys = [p.trip_id for p in self.predictions]
        keys += [d.key.decode() for d in self.dead_letters if d.key]
        return Counter(keys)


def read_outputs(kafka: KafkaSettings, topics: TopicSettings, codec: Codec = CODEC) -> Outputs:
    predictions, letters = [], []
    for partition in range(topics.partitions):
        predictions += [codec.decode(m.value(), TripPrediction)
                        for m in read_partition(kafka, topics.predictions, partition)]
        letters += [codec.decode(m.value(), DeadLetter)
                    for m in read_partition(kafka, topics.dead_letters, partition)]
    return Outputs(predictions, letters)


def read_model_events(kafka: KafkaSettings, topics: TopicSettings) -> list[ModelEvent]:
    return [CODEC.decode(m.value(), ModelEvent)
            for m in read_partition(kafka, topics.model_events)]


def wait_for(condition: Any, timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


class Worker:
    """One ``edml serve`` process with its own data directory and web port."""

    def __init__(self, kafka: KafkaSettings, topics: TopicSettings, storage: StorageSettings,
                 data_dir: Path, group: str, model: str = "trips",
                 extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.env = {
            "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "EDML_KAFKA_BOOTSTRAP": kafka.bootstrap,
            "EDML_KAFKA_SESSION_TIMEOUT_MS": str(kafka.session_timeout_ms),
            "EDML_KAFKA_HEARTBEAT_INTERVAL_MS": str(kafka.heartbeat_interval_ms),
            "EDML_KAFKA_MAX_POLL_INTERVAL_MS": str(kafka.max_poll_interval_ms),
            "EDML_STORAGE_URI": storage.uri, "EDML_STORAGE_ENDPOINT": storage.endpoint or "",
            "EDML_STORAGE_TIMEOUT_S": "5",
            "EDML_SCORING_MODEL_NAME": model, "EDML_SCORING_GROUP_ID": group,
            "EDML_SCORING_DATA_DIR": str(data_dir), "EDML_SCORING_WEB_HOST": "127.0.0.1",
            "EDML_SCORING_WEB_PORT": str(self.port), "EDML_SCORING_LOAD_ATTEMPTS": "2",
            "EDML_SCORING_LOAD_BACKOFF_S": "0.2",
        }
        self.env |= topics.as_env()
        self.env |= extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        # with a parent-death signal: a test run killed from outside leaves no worker behind
        self.process = spawn([sys.executable, "-m", "edml.cli", "serve"], self.log_path,
                             self.env)
        return self

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}",
                                        timeout=2) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    def readiness(self) -> dict[str, Any]:
        return readiness(self.port)

    def wait_ready(self, version: str | None = None, timeout_s: float = 90) -> None:
        assert self.process is not None
        try:
            wait_ready(self.port, self.process, timeout_s, version)
        except StackError as exc:
            raise AssertionError(f"{exc}\n{self.log()}") from exc

    def metric(self, name: str) -> float:
        _, body = self.get("/metrics")
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def log(self) -> str:
        """The end of the worker's log: what a failure message shows."""
        return self.full_log()[-4000:]

    def full_log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def logged(self, event: str) -> bool:
        """Did the worker log ``event``, anywhere in its log?"""
        return event in self.full_log()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


class Workers:
    """Makes workers for one test and stops every one of them after it."""

    def __init__(self, kafka: KafkaSettings, topics: TopicSettings, gcs: StorageSettings,
                 root: Path) -> None:
        self._args, self._root = (kafka, topics, gcs), root
        self.started: list[Worker] = []
        self._group = f"scoring-{uuid.uuid4().hex[:8]}"  # this test's own consumer group

    def make(self, name: str, topics: TopicSettings | None = None,
             storage: StorageSettings | None = None,
             extra_env: dict[str, str] | None = None) -> Worker:
        kafka, own, gcs = self._args
        worker = Worker(kafka, topics or own, storage or gcs, self._root / name, self._group,
                        extra_env=extra_env)
        self.started.append(worker)
        return worker


@contextmanager
def storage_behind_proxy(gcs: StorageSettings) -> Iterator[tuple[TcpProxy, StorageSettings]]:
    """The test's storage through a proxy that can go down or hang: the proxy, and the
    storage settings that reach it through the proxy (for a worker)."""
    assert gcs.endpoint is not None
    with proxy_to(int(gcs.endpoint.rsplit(":", 1)[1])) as proxy:
        yield proxy, gcs.model_copy(update={"endpoint": proxy.endpoint})


def serving(model: Path, publisher: PublisherSettings, workers: Workers, version: str
            ) -> Worker:
    """Publish ``version`` and start a worker that serves it."""
    publish(model, "trips", publisher, version=version)
    worker = workers.make("w1").start()
    worker.wait_ready(version)
    return worker


def all_outcomes(kafka: KafkaSettings, topics: TopicSettings, expected: int) -> None:
    wait_for(lambda: len(read_outputs(kafka, topics).outcome_counts()) >= expected, 60,
             f"{expected} outcomes")
