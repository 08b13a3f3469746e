"""Small stand-ins for the unit tier: a Kafka message and a model, no broker, no TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edml.samples import SIGNATURE


@dataclass
class FakeMessage:
    """Has what confluent-kafka's Message offers the scoring code."""

    _value: bytes | None
    _key: bytes | None = None
    _topic: str = "records"
    _partition: int = 0
    _offset: int = 0
    _timestamp_ms: int = 1_700_000_000_000

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp_ms)

    def error(self) -> None:
        return None


class DistanceModel:
    """Predicts 60 s per zone of difference between pickup and dropoff, plus 5 minutes."""

    signature = SIGNATURE

    def __init__(self, answer: float | None = None) -> None:
        self.calls = 0
        self.answer = answer

    def predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        self.calls += 1
        if self.answer is not None:
            return np.full(len(columns["pickup_zone_id"]), self.answer)
        gap = np.abs(columns["pickup_zone_id"] - columns["dropoff_zone_id"])
        return 300.0 + 60.0 * gap
