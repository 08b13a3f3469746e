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
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from rocksdict import AccessType, Rdict, WriteBatch, WriteOptions

from edml.codec import Codec
from edml.errors import DecodeError, StorageError
from edml.logs import event, get_logger
from services.batch import KEYED, Predictions
from services.drift import DriftMonitor
from services.evidence import EvidenceWindow
from services.metrics import Metrics

__all__ = ["Change", "Changes", "LiveEvaluator"]

log = get_logger(__name__)
_PREDICTED, _ACTUAL = b"p:", b"a:"
_JOIN_CHANGES = "edml.JoinChanges"
# changes a changelog message carries at most: ~50 KB, far under any broker's message limit
# whatever the batch size
_CHANGES_PER_MESSAGE = 1000
# A stored prediction: this byte, the versions' UTF-8 length (2 bytes, little-endian), the
# versions joined by NUL, then a little-endian double per version (NaN: it made none).
# Packed with numpy a batch at a time; a store written before holds "version\tseconds" text.
# A keyed model's version is named "<_KEYED_MARK>key<_KEYED_MARK>version" (its key's
# champion first, then its rollout's candidate); a store written before keyed rollouts
# names its key's champion KEYED.
_PACKED = b"\x01"
_KEYED_MARK = "\x1f"


class Change(NamedTuple):
    """One write of the join state, for the changelog: ``value`` None is a delete."""

    partition: int
    key: bytes
    value: bytes | None


@dataclass
class Changes:
    """A batch's writes of the join state, in the order made, as three columns."""

    partitions: list[int] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)

    def append(self, change: Change) -> None:
        self.partitions.append(change.partition)
        self.keys.append(change.key)
        self.values.append(change.value)

    def extend(self, partitions: Iterable[int], keys: Iterable[bytes],
               values: Iterable[bytes | None]) -> None:
        self.partitions.extend(partitions)
        self.keys.extend(keys)
        self.values.extend(values)

    def __iter__(self) -> Iterator[Change]:
        return map(Change, self.partitions, self.keys, self.values)

    def __len__(self) -> int:
        return len(self.keys)


class LiveEvaluator:
    def __init__(self, path: Path, metrics: Metrics, horizon_s: float,
                 evidence: EvidenceWindow | None = None,
                 drift: DriftMonitor | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = Rdict(str(path), access_type=AccessType.with_ttl(int(horizon_s)))
        except Exception as exc:  # rocksdict raises plain Exception (e.g. a held lock)
            raise StorageError(f"cannot open the join store {path}: {exc}") from exc
        # No write-ahead log, as in Kafka Streams' stores: the changelog is the durable
        # copy, and an assignment replays it whatever the store held.
        writes = WriteOptions()
        # a property in rocksdict, which its type stub declares as a method
        writes.disable_wal = True  # type: ignore[method-assign,assignment]
        self._db.set_write_options(writes)
        self._metrics, self._evidence, self._drift = metrics, evidence, drift
        # the changelog is this worker group's own: single-object encoding, no registry
        self._codec = Codec()
        self.joined = 0

    def changelog(self, changes: Changes) -> list[tuple[int, bytes]]:
        """``changes`` as changelog messages: (partition, value), each partition's in the
        order made."""
        by_partition: dict[int, list[dict[str, Any]]] = {}
        for partition, key, value in zip(changes.partitions, changes.keys, changes.values,
                                         strict=True):
            by_partition.setdefault(partition, []).append({"key": key, "value": value})
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

    def predicted(self, batch: Predictions) -> Changes:
        """A batch's predictions: one multi-get for the actuals that came first, one write
        batch for the rest to wait, values packed a batch at a time. Returns the changes
        for the changelog."""
        keys = [trip_id.encode() for trip_id in batch.trip_ids]
        actuals: list[bytes | None] = self._db.get([_ACTUAL + key for key in keys]) or []
        values = _pack(batch.versions, batch.seconds)
        for group in batch.keyed:
            for row, value in zip(group.rows.tolist(), _pack(
                    batch.versions + tuple(f"{_KEYED_MARK}{group.key}{_KEYED_MARK}{version}"
                                           for version in group.versions),
                    np.hstack([batch.seconds[group.rows], group.seconds])), strict=True):
                values[row] = value
        partitions: list[int] = batch.partitions.tolist()
        changes, writes = Changes(), WriteBatch()
        joined = [row for row, actual in enumerate(actuals) if actual is not None]
        for row in joined:  # the actual came first: the trip is done, both halves leave
            self._complete(_unpack(values[row]), *_actual(actuals[row] or b""))
            writes.delete(_ACTUAL + keys[row])
            changes.append(Change(partitions[row], _ACTUAL + keys[row], None))
        done = set(joined)
        waiting = [row for row in range(len(keys)) if row not in done]
        stored = [_PREDICTED + keys[row] for row in waiting]
        kept = [values[row] for row in waiting]
        for key, value in zip(stored, kept, strict=True):
            writes.put(key, value)
        self._db.write(writes)
        changes.extend([partitions[row] for row in waiting], stored, kept)
        return changes

    def actual(self, trip_id: str, duration_s: float, partition: int,
               pickup_day: int | None = None) -> Change:
        """A trip's actual duration; ``pickup_day`` (days since 1970, wall clock) files its
        error under its event-time day for the drift monitors."""
        key = trip_id.encode()
        predicted = self._db.get(_PREDICTED + key)
        if predicted is not None:
            self._complete(_unpack(predicted), duration_s, pickup_day)
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
        keyed = [entry for entry in made if entry[0] == KEYED or
                 entry[0].startswith(_KEYED_MARK)]
        if keyed:
            made = made[:len(made) - len(keyed)]
            self._complete_keyed(keyed, made[0] if made else None, actual_s, pickup_day)
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

    def _complete_keyed(self, keyed: list[tuple[str, float]],
                        fleet: tuple[str, float] | None, actual_s: float,
                        pickup_day: int | None) -> None:
        """A keyed model's prediction, judged against the fleet champion's on the trip
        and counted for its drift monitor; during its key's rollout, its candidate's,
        paired with it for the evidence."""
        (label, champion_s), *candidate = keyed
        error_s = abs(champion_s - actual_s)
        self._metrics.live_abs_error_minutes.labels(KEYED).observe(error_s / 60.0)
        if fleet is not None:
            self._metrics.paired_diff_seconds.labels(fleet[0], KEYED).observe(
                error_s - abs(fleet[1] - actual_s))
        if label == KEYED:  # stored before keyed rollouts: no key, no version
            return
        _, key, champion = label.split(_KEYED_MARK)
        if self._drift is not None and pickup_day is not None:
            self._drift.outcome(champion, pickup_day, champion_s, actual_s, key=key)
        if candidate and self._evidence is not None:
            _, _, version = candidate[0][0].split(_KEYED_MARK)
            self._evidence.paired(champion, error_s, version,
                                  abs(candidate[0][1] - actual_s), key=key)

    def close(self) -> None:
        self._db.close()


def _pack(versions: tuple[str, ...], seconds: np.ndarray) -> list[bytes]:
    """Each row's stored value (see ``_PACKED``)."""
    names = "\x00".join(versions).encode()
    header = _PACKED + struct.pack("<H", len(names)) + names
    raw = np.ascontiguousarray(seconds, dtype="<f8").tobytes()
    width = 8 * len(versions)
    return [header + raw[start:start + width] for start in range(0, len(raw), width)]


def _unpack(value: bytes) -> list[tuple[str, float]]:
    """A stored prediction: (version, seconds) for each version that made one."""
    if not value.startswith(_PACKED):  # written before packing: "v1\t600.0[\tv2\t690.0]"
        fields = value.decode().split("\t")
        return [(version, float(seconds))
                for version, seconds in zip(fields[::2], fields[1::2], strict=True)]
    (length,) = struct.unpack_from("<H", value, 1)
    versions = value[3:3 + length].decode().split("\x00")
    seconds = np.frombuffer(value, "<f8", offset=3 + length).tolist()
    return [(version, made) for version, made in zip(versions, seconds, strict=True)
            if made == made]  # NaN: that version made none


def _actual(value: bytes) -> tuple[float, int | None]:
    """A stored actual: its duration, and its pickup day where it was kept (a store
    written before the drift monitors holds the duration alone)."""
    duration, _, day = value.decode().partition("\t")
    return float(duration), int(day) if day else None
