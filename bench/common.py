"""What every benchmark shares: the same real requests, the same SavedModel, and one way to
measure a contender: from the predictions it wrote."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from edml.codec import Codec
from edml.contracts import TripPrediction
from edml.kafka import flush_or_raise, producer, read_partition
from edml.settings import KafkaSettings

CODEC = Codec()


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
        prod.produce(topic, key=f"t{i}".encode(), value=value)
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


def measure(kafka: KafkaSettings, topic: str, partitions: int) -> Measured:
    predicted, requested = [], []
    for partition in range(partitions):
        for msg in read_partition(kafka, topic, partition, timeout_s=30):
            record = CODEC.decode_record(msg.value() or b"", TripPrediction.SCHEMA)
            predicted.append(record["predicted_at"].timestamp())
            requested.append(record["requested_at"].timestamp())
    p, r = np.array(predicted), np.array(requested)
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


def stamp() -> str:
    return datetime.now().strftime("%H:%M:%S")


def model_dir(given: Path | None) -> Path:
    if given is not None:
        return given
    import tempfile

    from trainer.pipeline import train
    from trainer.settings import TrainSettings

    return train(TrainSettings(quick=True, out=Path(tempfile.mkdtemp(prefix="edml-bench-")))
                 ).model_dir
