"""What every benchmark shares: the same real requests, the same SavedModel, and one way to
measure a contender: from the predictions it wrote."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.contenders.common import HEARTBEAT_INTERVAL_MS, SESSION_TIMEOUT_MS
from edml.codec import Codec
from edml.contracts import TripPrediction
from edml.kafka import ensure_topics, flush_or_raise, producer, read_partition, topic_specs
from edml.settings import KafkaSettings, TopicSettings

CODEC = Codec()
PARTITIONS = 4


def requests(n: int) -> list[bytes]:
    """``n`` encoded requests, cycled from real October 2019 trips, each with its own trip
    id."""
    from services.replay import replay_trips

    base = [request for request, _ in replay_trips()]
    return [CODEC.encode(dataclasses.replace(base[i % len(base)], trip_id=f"t{i}"))
            for i in range(n)]


def fill(kafka: KafkaSettings, topic: str, values: list[bytes]) -> None:
    prod = producer(kafka, **{"linger.ms": 20, "batch.num.messages": 10000})
    for i, value in enumerate(values):
        while True:
            try:
                prod.produce(topic, key=f"t{i}".encode(), value=value)
                break
            except BufferError:  # the client's queue is full: let the broker catch up
                prod.poll(0.5)
        if i % 10000 == 0:
            prod.poll(0)
    flush_or_raise(prod, 60)


@dataclass
class Measured:
    outputs: int
    seconds: float  # first to last prediction
    latencies_s: np.ndarray  # predicted_at - requested_at, per prediction

    @property
    def rate(self) -> float:
        return self.outputs / self.seconds if self.seconds > 0 else float("nan")


def prediction_times(kafka: KafkaSettings, topic: str, partitions: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per prediction on ``topic``: when its request was written and when it was, in s."""
    predicted, requested = [], []
    for partition in range(partitions):
        for msg in read_partition(kafka, topic, partition, timeout_s=30):
            record = CODEC.decode_record(msg.value() or b"", TripPrediction.SCHEMA)
            predicted.append(record["predicted_at"].timestamp())
            requested.append(record["requested_at"].timestamp())
    return np.array(requested), np.array(predicted)


def measure(kafka: KafkaSettings, topic: str, partitions: int) -> Measured:
    r, p = prediction_times(kafka, topic, partitions)
    if not len(p):
        return Measured(0, 0.0, np.array([]))
    return Measured(len(p), float(p.max() - p.min()), p - r)


def wait_for_outputs(kafka: KafkaSettings, topic: str, partitions: int, n: int,
                     timeout_s: float, proc: Any = None) -> int:
    """Count outputs until ``n`` arrive or time runs out; returns the count."""
    deadline, count = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        count = sum(sum(1 for _ in read_partition(kafka, topic, p, timeout_s=30))
                    for p in range(partitions))
        if count >= n or (proc is not None and proc.poll() is not None):
            return count
        time.sleep(1)
    return count


def topics_for(kafka: KafkaSettings, name: str) -> TopicSettings:
    """A run's own topics, created on the broker."""
    suffix = f"{name}-{uuid.uuid4().hex[:6]}"
    topics = TopicSettings(records=f"in-{suffix}", predictions=f"out-{suffix}",
                           shadow_predictions=f"shadow-{suffix}",
                           actuals=f"actuals-{suffix}", dead_letters=f"dead-{suffix}",
                           models=f"models-{suffix}", model_events=f"events-{suffix}",
                           evaluations=f"evaluations-{suffix}",
                           partitions=PARTITIONS)
    ensure_topics(kafka, topic_specs(topics))
    return topics


def worker_env(kafka: KafkaSettings, topics: TopicSettings, storage_uri: str,
                data_dir: Path, port: int) -> dict[str, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
           "EDML_KAFKA_BOOTSTRAP": kafka.bootstrap,
           "EDML_KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
           "EDML_KAFKA_HEARTBEAT_INTERVAL_MS": str(HEARTBEAT_INTERVAL_MS),
           "EDML_STORAGE_URI": storage_uri,
           "EDML_SCORING_MODEL_NAME": "bench", "EDML_SCORING_DATA_DIR": str(data_dir),
           "EDML_SCORING_WEB_HOST": "127.0.0.1", "EDML_SCORING_WEB_PORT": str(port),
           "EDML_SCORING_GROUP_ID": f"bench-{uuid.uuid4().hex[:6]}"}
    return env | topics.as_env()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far, all their threads included (from
    /proc: no psutil in the project's dependencies for one sum)."""
    ticks = 0
    for pid in pids:
        # the fields after the command's closing parenthesis: utime and stime are 12th, 13th
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def stamp() -> str:
    return datetime.now().strftime("%H:%M:%S")


def model_dir(given: Path | None) -> Path:
    if given is not None:
        return given
    import atexit
    import shutil
    import tempfile

    from trainer.pipeline import train
    from trainer.settings import TrainSettings

    out = Path(tempfile.mkdtemp(prefix="edml-bench-model-"))
    atexit.register(shutil.rmtree, out, True)  # a benchmark leaves nothing behind
    return train(TrainSettings(quick=True, out=out)).model_dir


def run_until_outputs(argv: list[str], env: dict[str, str] | None, kafka: KafkaSettings,
                      topics: TopicSettings, n: int, log: Path, timeout_s: float
                      ) -> tuple[float, int]:
    """Run a contender until ``n`` outputs (or it exits, or time runs out), stop it, and
    return its rate from first to last ``predicted_at`` and the outputs it wrote."""
    import subprocess

    with log.open("w") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=Path(__file__).resolve().parents[1])
    try:
        got = wait_for_outputs(kafka, topics.predictions, PARTITIONS, n, timeout_s, proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return measure(kafka, topics.predictions, PARTITIONS).rate, got

