"""The trips a retrain request asks for, read back from the stream: each request on the
records topic joined with its actual duration on the actuals topic, for the pickup days of
the request's window, and cleaned by the trainer's own rules (``trainer.data.clean``).

The topics must keep that long: their retention is a deployment setting (README)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from typing import TypeVar

import pandas as pd

from edml.codec import Codec
from edml.contracts import Record, TripCompleted, TripRequest
from edml.errors import ContractError, DataError
from edml.kafka import read_partition
from edml.settings import KafkaSettings, TopicSettings
from trainer.data import CleanReport, TripFrame, clean

__all__ = ["trips_from_topics"]

R = TypeVar("R", bound=Record)
# past the window's last day by this much, a partition holds no more of its trips: a day for
# the day itself, a day for late and out-of-order records (trips last at most 3 hours)
_LATE = timedelta(days=2)


def _decoded(kafka: KafkaSettings, topic: str, partitions: int, codec: Codec,
             cls: type[R], past: Callable[[R], bool]) -> Iterator[R]:
    """The records of ``topic`` that decode as ``cls`` (the others are skipped: the worker
    dead-lettered them already), each partition read until its end or its first record
    ``past`` the window: on a live topic the end moves as fast as it is read."""
    for partition in range(partitions):
        for msg in read_partition(kafka, topic, partition):
            try:
                record = codec.decode(msg.value() or b"", cls)
            except ContractError:
                continue
            if past(record):
                break
            yield record


def trips_from_topics(kafka: KafkaSettings, topics: TopicSettings, codec: Codec,
                      start: date, end: date) -> tuple[TripFrame, CleanReport]:
    """Every trip picked up on ``start``..``end`` whose request and actual are both still
    on their topics, cleaned as the trainer cleans trip files."""
    # records arrive roughly in event time: _LATE past the window's end, it is complete
    beyond = datetime.combine(end, time()) + _LATE
    requests = {r.trip_id: r for r in _decoded(kafka, topics.records, topics.partitions,
                                                codec, TripRequest,
                                                lambda r: r.pickup_datetime > beyond)
                if start <= r.pickup_datetime.date() <= end}
    rows = []
    for done in _decoded(kafka, topics.actuals, topics.partitions, codec, TripCompleted,
                         lambda a: a.dropoff_datetime > beyond):
        asked = requests.pop(done.trip_id, None)  # a duplicate actual joins once
        if asked is not None:
            rows.append({"trip_id": asked.trip_id, "pickup_datetime": asked.pickup_datetime,
                         "dropoff_datetime": done.dropoff_datetime,
                         "passenger_count": asked.passenger_count,
                         "PULocationID": asked.pickup_zone_id,
                         "DOLocationID": asked.dropoff_zone_id})
    if not rows:
        raise DataError(f"no trip of {start}..{end} has both its request and its actual on "
                        f"{topics.records} and {topics.actuals}: retention too short?")
    raw = pd.DataFrame(rows)
    for column in ("pickup_datetime", "dropoff_datetime"):
        raw[column] = pd.to_datetime(raw[column])
    raw["file_month"] = raw["pickup_datetime"].dt.to_period("M")
    months = sorted(raw["file_month"].unique())
    return clean(raw, list(months))
