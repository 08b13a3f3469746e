"""Consumer lag per assigned partition, exported by the worker itself so that no lag
exporter is needed: the high watermark of the last fetch minus the committed offset.

The watermark is the one fetch responses carry (``get_watermark_offsets(cached=True)``):
a ListOffsets round trip per partition would cost the scoring thread a broker call, and
some Kafka-protocol brokers answer it wrongly. The committed offsets are the ones this
worker's commits report, and, for a partition it has not committed yet, those the group
held when the partition was assigned."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from services.metrics import Metrics

__all__ = ["ConsumerLag"]

_EVERY_S = 1.0  # a scrape every few seconds needs no fresher figure
_ASK_S = 5.0  # the longest the group's committed offsets are waited for on assignment


class ConsumerLag:
    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.monotonic) -> None:
        self._gauge = metrics.consumer_lag
        self._clock = clock
        self._committed: dict[tuple[str, int], int] = {}
        self._shown_at = float("-inf")

    def assigned(self, consumer: Any, partitions: list[TopicPartition],
                 timeout_s: float) -> None:
        """Learn where the group stands on newly assigned partitions (one OffsetFetch)."""
        try:
            # bounded: this runs inside the rebalance callback, and a figure can wait
            committed = consumer.committed(partitions, timeout=min(timeout_s, _ASK_S))
        except Exception:  # only the gauge waits for this worker's first commit
            return
        self._note(committed)

    def committed(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """The consumer's ``on_commit``: called from ``consume()``, on the scoring thread."""
        if error is None:
            self._note(partitions)

    def revoked(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._committed.pop((tp.topic, tp.partition), None)
            with contextlib.suppress(KeyError):  # never shown
                self._gauge.remove(tp.topic, str(tp.partition))

    def show(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Refresh the gauge, at most once a second."""
        now = self._clock()
        if now - self._shown_at < _EVERY_S:
            return
        self._shown_at = now
        for tp in partitions:
            committed = self._committed.get((tp.topic, tp.partition))
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            if committed is not None and high >= 0:
                self._gauge.labels(tp.topic, str(tp.partition)).set(max(0, high - committed))

    def _note(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            if tp.error is None and tp.offset >= 0:
                self._committed[(tp.topic, tp.partition)] = tp.offset
