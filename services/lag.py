"""Consumer lag per assigned partition, exported by the worker itself so that no lag
exporter is needed: the high watermark of the last fetch minus the committed offset.

The watermark is the one fetch responses carry (``get_watermark_offsets(cached=True)``):
a ListOffsets round trip per partition would cost the scoring thread a broker call, and
some Kafka-protocol brokers answer it wrongly. The committed offsets are the ones this
worker's commits report, and, for a partition it has not committed yet, those the group
holds, asked for between batches."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from services.metrics import Metrics

__all__ = ["ConsumerLag"]

_EVERY_S = 1.0  # a scrape every few seconds needs no fresher figure
_ASK_S = 2.0  # the longest the group's committed offsets are waited for
_ASK_EVERY_S = 10.0  # how often they are asked for, while some are unknown


class ConsumerLag:
    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.monotonic) -> None:
        self._gauge = metrics.consumer_lag
        self._clock = clock
        self._committed: dict[tuple[str, int], int] = {}
        self._shown_at = self._asked_at = float("-inf")

    def committed(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """The consumer's ``on_commit``: called from ``consume()``, on the scoring thread."""
        if error is None:
            self._note(partitions)

    def revoked(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._committed.pop((tp.topic, tp.partition), None)
            with contextlib.suppress(KeyError):  # never shown
                self._gauge.remove(tp.topic, str(tp.partition))

    def show(self, consumer: Any, partitions: list[TopicPartition], timeout_s: float) -> None:
        """Refresh the gauge, at most once a second. Called between batches, never from the
        rebalance callback: asking for committed offsets there stalled librdkafka's fetching
        of the partitions just assigned (seen against the local broker after a restart)."""
        now = self._clock()
        if now - self._shown_at < _EVERY_S:
            return
        self._shown_at = now
        unknown = [tp for tp in partitions if (tp.topic, tp.partition) not in self._committed]
        if unknown and now - self._asked_at >= _ASK_EVERY_S:
            self._asked_at = now
            self._ask(consumer, unknown, timeout_s)
        for tp in partitions:
            committed = self._committed.get((tp.topic, tp.partition))
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            if committed is not None and high >= 0:
                self._gauge.labels(tp.topic, str(tp.partition)).set(max(0, high - committed))

    def _ask(self, consumer: Any, partitions: list[TopicPartition], timeout_s: float) -> None:
        """Where the group stands on partitions this worker has not committed yet (one
        OffsetFetch): a worker stalled since its start still shows its lag."""
        try:
            # bounded: this runs on the scoring thread, and the figure can wait
            committed = consumer.committed(partitions, timeout=min(timeout_s, _ASK_S))
        except Exception:  # only the gauge waits for this worker's first commit
            return
        self._note(committed)

    def _note(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            if tp.error is None and tp.offset >= 0:
                self._committed[(tp.topic, tp.partition)] = tp.offset
