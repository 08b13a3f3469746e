"""Live evaluation: predictions joined with the trips' actual durations, per model version.

The records and actuals topics are both keyed by trip id with the same partition count, and
the scoring loop consumes both in one group with the range assignor, so a trip's request and
its actual land on the same worker. Whichever arrives second completes the join; the other
waits in RocksDB (``<data dir>/joins.rocksdb``), opened with a time-to-live of the
evaluation horizon: RocksDB drops older halves itself while it compacts, so no sweep ever
blocks the scoring loop.

The state follows its partition, as in Kafka Streams: every change is also a ``Change``
for the join changelog topic, at the partition of the record that made it, and a worker
that is assigned a partition first replays that partition of the changelog (``restore``).
A scale-out or a rebalance moves a waiting half with its partition, so no join is lost.
A batch's changes travel as one ``JoinChanges`` message per partition (``changelog``):
a message per trip cost the scoring loop a produce per trip.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rocksdict import AccessType, Rdict, WriteBatch

from edml.codec import Codec
from edml.errors import DecodeError, StorageError
from edml.logs import event, get_logger
from services.drift import DriftMonitor
from services.evidence import EvidenceWindow
from services.metrics import Metrics

__all__ = ["Change", "LiveEvaluator"]

log = get_logger(__name__)
_PREDICTED, _ACTUAL = b"p:", b"a:"
_JOIN_CHANGES = "edml.JoinChanges"
# changes a changelog message carries at most: ~50 KB, far under any broker's message limit
# whatever the batch size
_CHANGES_PER_MESSAGE = 1000


@dataclass(frozen=True, slots=True)
class Change:
    """One write of the join state, for the changelog: ``value`` None is a delete."""

    partition: int
    key: bytes
    value: bytes | None


class LiveEvaluator:
    def __init__(self, path: Path, metrics: Metrics, horizon_s: float,
                 evidence: EvidenceWindow | None = None,
                 drift: DriftMonitor | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = Rdict(str(path), access_type=AccessType.with_ttl(int(horizon_s)))
        except Exception as exc:  # rocksdict raises plain Exception (e.g. a held lock)
            raise StorageError(f"cannot open the join store {path}: {exc}") from exc
        self._metrics, self._evidence, self._drift = metrics, evidence, drift
        # the changelog is this worker group's own: single-object encoding, no registry
        self._codec = Codec()
        self.joined = 0

    def changelog(self, changes: Iterable[Change]) -> list[tuple[int, bytes]]:
        """``changes`` as changelog messages: (partition, value), each partition's in the
        order made."""
        by_partition: dict[int, list[dict[str, Any]]] = {}
        for change in changes:
            by_partition.setdefault(change.partition, []).append(
                {"key": change.key, "value": change.value})
        return [(partition, self._codec.encode_raw(_JOIN_CHANGES, {
                    "changes": writes[start:start + _CHANGES_PER_MESSAGE]}))
                for partition, writes in by_partition.items()
                for start in range(0, len(writes), _CHANGES_PER_MESSAGE)]

    def writes(self, messages: Iterable[Any]) -> Iterator[tuple[bytes, bytes | None]]:
        """The store writes changelog messages hold, in order, for ``restore``. A message
        that cannot be read costs those joins only (the live error of a few trips), so it
        is logged and skipped; a message written before ``JoinChanges`` held one write as
        its key and value."""
        for msg in messages:
            key = msg.key()
            if key is not None and key.startswith((_PREDICTED, _ACTUAL)):
                yield key, msg.value()
                continue
            try:
                record = self._codec.decode_record(msg.value() or b"", _JOIN_CHANGES)
            except DecodeError as exc:
                event(log, "evaluation.changelog_unreadable", logging.WARNING,
                      source=f"{msg.topic()}[{msg.partition()}]@{msg.offset()}",
                      error=str(exc))
                continue
            for change in record["changes"]:
                yield change["key"], change["value"]

    def predicted(self, items: Iterable[tuple[str, list[tuple[str, float]], int]]
                  ) -> list[Change]:
        """A batch of (trip id, [(version, seconds), ...], partition), the champion's first
        and a rollout's candidate's beside it: one multi-get and one write batch, not a
        call per trip. Returns the changes for the changelog."""
        items = list(items)
        keys = [trip_id.encode() for trip_id, _, _ in items]
        actuals: list[bytes | None] = self._db.get([_ACTUAL + key for key in keys]) or []
        batch, changes = WriteBatch(), []
        for (_, made, partition), key, actual in zip(items, keys, actuals, strict=True):
            if actual is not None:
                self._complete(made, *_actual(actual))
                batch.delete(_ACTUAL + key)
                changes.append(Change(partition, _ACTUAL + key, None))
            else:
                value = "\t".join(f"{version}\t{seconds!r}" for version, seconds in made
                                  ).encode()
                batch.put(_PREDICTED + key, value)
                changes.append(Change(partition, _PREDICTED + key, value))
        self._db.write(batch)
        return changes

    def actual(self, trip_id: str, duration_s: float, partition: int,
               pickup_day: int | None = None) -> Change:
        """A trip's actual duration; ``pickup_day`` (days since 1970, wall clock) files its
        error under its event-time day for the drift monitors."""
        key = trip_id.encode()
        predicted = self._db.get(_PREDICTED + key)
        if predicted is not None:
            fields = predicted.decode().split("\t")
            self._complete([(v, float(s)) for v, s in zip(fields[::2], fields[1::2],
                                                           strict=True)], duration_s,
                           pickup_day)
            del self._db[_PREDICTED + key]
            return Change(partition, _PREDICTED + key, None)
        value = (repr(duration_s) if pickup_day is None
                 else f"{duration_s!r}\t{pickup_day}").encode()
        self._db[_ACTUAL + key] = value
        return Change(partition, _ACTUAL + key, value)

    def restore(self, changes: Iterable[tuple[bytes, bytes | None]]) -> int:
        """Replay a changelog partition (oldest first) into the store; returns the count."""
        batch, count = WriteBatch(), 0
        for key, value in changes:
            if not key.startswith((_PREDICTED, _ACTUAL)):
                continue
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
            count += 1
        self._db.write(batch)
        return count

    def _complete(self, made: list[tuple[str, float]], actual_s: float,
                  pickup_day: int | None) -> None:
        if self._drift is not None and pickup_day is not None:
            for version, predicted_s in made:
                self._drift.outcome(version, pickup_day, predicted_s, actual_s)
        errors = [(version, abs(predicted_s - actual_s)) for version, predicted_s in made]
        for version, error_s in errors:
            self._metrics.live_abs_error_minutes.labels(version).observe(error_s / 60.0)
        if len(errors) == 2 and self._evidence is not None:  # champion first, candidate
            (champion, champion_error), (candidate, candidate_error) = errors
            self._evidence.paired(champion, champion_error, candidate, candidate_error)
            self._metrics.paired_diff_seconds.labels(champion, candidate).observe(
                candidate_error - champion_error)
        self.joined += 1

    def close(self) -> None:
        self._db.close()


def _actual(value: bytes) -> tuple[float, int | None]:
    """A stored actual: its duration, and its pickup day where it was kept (a store
    written before the drift monitors holds the duration alone)."""
    duration, _, day = value.decode().partition("\t")
    return float(duration), int(day) if day else None
