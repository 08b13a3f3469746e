"""Live evaluation: predictions joined with the trips' actual durations, per model version.

The records and actuals topics are both keyed by trip id with the same partition count, and
the scoring loop consumes both in one group with the range assignor, so a trip's request and
its actual land on the same worker. Whichever arrives second completes the join; the other
waits in RocksDB (``<data dir>/joins.rocksdb``), opened with a time-to-live of the
evaluation horizon: RocksDB drops older halves itself while it compacts, so no sweep ever
blocks the scoring loop. As in Kafka Streams' stream-stream join, each side waits in a
store of its own (a column family): every prediction looks for its actual, and that look-up
goes to the actuals' store, which holds the few actuals that came first, not to the
predictions' store that holds an hour of traffic.

The state follows its partition, as in Kafka Streams: every change is also a ``Change``
for the join changelog topic, at the partition of the record that made it, and a worker
that is assigned a partition first replays that partition of the changelog (``restore``).
A scale-out or a rebalance moves a waiting half with its partition, so no join is lost.
A batch's changes travel as one ``JoinChanges`` message per partition (``changelog``):
a message per trip cost the scoring loop a produce per trip.
"""

from __future__ import annotations

import itertools
import logging
import math
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, cast

import numpy as np
from rocksdict import AccessType, BlockBasedOptions, Options, Rdict, WriteBatch, WriteOptions

from edml.codec import Codec
from edml.errors import DecodeError, StorageError
from edml.logs import event, get_logger
from services.batch import KEYED, Predictions
from services.drift import DriftMonitor
from services.evidence import EvidenceWindow
from services.metrics import Metrics

__all__ = ["Change", "Changes", "LiveEvaluator"]

log = get_logger(__name__)
_PREDICTED, _ACTUAL = b"p:", b"a:"  # keys in the changelog and in the stores alike
_STORES = {_PREDICTED: "predictions", _ACTUAL: "actuals"}  # column families
# Measured on a store filling at 100k predictions/s (a write batch of 5,000): RocksDB's
# default 64 MB memtable cost 2.0 us a put, 16 MB 1.0 us (a shorter skip list), with less
# CPU in all counting its flushes. The Bloom filter keeps a look-up across the flushed files
# to the one that holds the key (9 us against 31 us for an actual's prediction).
_MEMTABLE_BYTES = 16 << 20
_BLOOM_BITS_PER_KEY = 10
# actuals that wait whose keys are kept in memory (~130 bytes each): a horizon of trips
# whose requests never came at 1% of 1,000 trips/s is ~150,000
_WAITING_TRACKED = 250_000
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


class _Waiting:
    """The trip ids of the actuals that wait in the store, so that a batch's predictions
    look up only theirs: RocksDB's multi-get costs ~0.4 us a key even on an empty column
    family, a set's membership 0.03 us, and all but a few predictions find no actual. Kept
    in memory as far as ``capacity`` allows; past it, every prediction is looked up until
    every id no longer kept has expired. Written by hand: RocksDB's own ``KeyMayExist``
    answered "maybe" for every key it was asked, present or not."""

    def __init__(self, horizon_s: float, capacity: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._horizon_s, self._capacity, self._clock = horizon_s, capacity, clock
        self._expiry: dict[bytes, float] = {}  # in the order added, so in order of expiry
        self._untracked_until = -math.inf  # till then, ids wait that are not kept here

    def add(self, trip_id: bytes) -> None:
        now = self._expire()
        self._expiry.pop(trip_id, None)  # kept anew: to the end, in expiry order
        if now < self._untracked_until or len(self._expiry) >= self._capacity:
            self._expiry.clear()
            self._untracked_until = now + self._horizon_s
        else:
            self._expiry[trip_id] = now + self._horizon_s

    def discard(self, trip_id: bytes) -> None:
        self._expiry.pop(trip_id, None)

    def rows(self, trip_ids: list[bytes]) -> list[int]:
        """The rows of ``trip_ids`` whose actual may wait."""
        if self._expire() < self._untracked_until:
            return list(range(len(trip_ids)))
        waiting = self._expiry
        return [row for row, trip_id in enumerate(trip_ids) if trip_id in waiting] \
            if waiting else []

    def _expire(self) -> float:
        now = self._clock()
        gone = list(itertools.takewhile(lambda trip_id: self._expiry[trip_id] <= now,
                                        self._expiry))
        for trip_id in gone:
            del self._expiry[trip_id]
        return now


class LiveEvaluator:
    def __init__(self, path: Path, metrics: Metrics, horizon_s: float,
                 evidence: EvidenceWindow | None = None,
                 drift: DriftMonitor | None = None,
                 waiting_tracked: int = _WAITING_TRACKED,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._db = _open(path, int(horizon_s))
        self._waiting = _Waiting(horizon_s, waiting_tracked, clock)
        self._predictions = self._db.get_column_family(_STORES[_PREDICTED])
        self._actuals = self._db.get_column_family(_STORES[_ACTUAL])
        self._handles = {prefix: self._db.get_column_family_handle(name)
                         for prefix, name in _STORES.items()}
        # past the capacity the ids are no longer kept: no need to read further
        for key in itertools.islice(self._actuals.keys(), waiting_tracked + 1):
            self._waiting.add(cast(bytes, key)[len(_ACTUAL):])  # raw mode: keys are bytes
        self._metrics, self._evidence, self._drift = metrics, evidence, drift
        # the changelog is this worker group's own: single-object encoding, no registry
        self._codec = Codec()
        self.joined = 0

    def changelog(self, changes: Changes) -> list[tuple[int, bytes]]:
        """``changes`` as changelog messages: (partition, value), each partition's in the
        order made."""
        by_partition: dict[int, tuple[list[bytes], list[bytes | None]]] = {}
        for partition, key, value in zip(changes.partitions, changes.keys, changes.values,
                                         strict=True):
            writes = by_partition.get(partition)
            if writes is None:
                writes = by_partition[partition] = ([], [])
            writes[0].append(key)
            writes[1].append(value)
        return [(partition, self._codec.encode_join_changes(
                    keys[start:start + _CHANGES_PER_MESSAGE],
                    values[start:start + _CHANGES_PER_MESSAGE]))
                for partition, (keys, values) in by_partition.items()
                for start in range(0, len(keys), _CHANGES_PER_MESSAGE)]

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
                record = self._codec.decode_record(msg.value() or b"", "edml.JoinChanges")
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
        looked_up = self._waiting.rows(keys)
        found: list[bytes | None] = (self._actuals.get(
            [_ACTUAL + keys[row] for row in looked_up]) or []) if looked_up else []
        values = _pack(batch.versions, batch.seconds)
        for group in batch.keyed:
            for row, value in zip(group.rows.tolist(), _pack(
                    batch.versions + tuple(f"{_KEYED_MARK}{group.key}{_KEYED_MARK}{version}"
                                           for version in group.versions),
                    np.hstack([batch.seconds[group.rows], group.seconds])), strict=True):
                values[row] = value
        partitions: list[int] = batch.partitions.tolist()
        changes, writes = Changes(), WriteBatch(raw_mode=True)
        joined = [(row, actual) for row, actual in zip(looked_up, found, strict=True)
                  if actual is not None]
        if joined:
            actuals_store = self._handles[_ACTUAL]
            for row, actual in joined:  # the actual came first: the trip is done
                self._complete(_unpack(values[row]), *_actual(actual))
                writes.delete(_ACTUAL + keys[row], actuals_store)
                self._waiting.discard(keys[row])
                changes.append(Change(partitions[row], _ACTUAL + keys[row], None))
            done = {row for row, _ in joined}
            waiting = [row for row in range(len(keys)) if row not in done]
            partitions = [partitions[row] for row in waiting]
            keys, values = [keys[row] for row in waiting], [values[row] for row in waiting]
        stored = [_PREDICTED + key for key in keys]
        predictions_store = self._handles[_PREDICTED]
        for key, value in zip(stored, values, strict=True):
            writes.put(key, value, predictions_store)
        self._db.write(writes)
        changes.extend(partitions, stored, values)
        return changes

    def actual(self, trip_id: str, duration_s: float, partition: int,
               pickup_day: int | None = None) -> Change:
        """A trip's actual duration; ``pickup_day`` (days since 1970, wall clock) files its
        error under its event-time day for the drift monitors."""
        key = trip_id.encode()
        predicted = self._predictions.get(_PREDICTED + key)
        if predicted is not None:
            self._complete(_unpack(predicted), duration_s, pickup_day)
            del self._predictions[_PREDICTED + key]
            return Change(partition, _PREDICTED + key, None)
        value = (repr(duration_s) if pickup_day is None
                 else f"{duration_s!r}\t{pickup_day}").encode()
        self._actuals[_ACTUAL + key] = value
        self._waiting.add(key)
        return Change(partition, _ACTUAL + key, value)

    def restore(self, changes: Iterable[tuple[bytes, bytes | None]]) -> int:
        """Replay a changelog partition (oldest first) into the store; returns the count."""
        batch, count = WriteBatch(raw_mode=True), 0
        for key, value in changes:
            store = self._handles.get(key[:len(_ACTUAL)])  # both prefixes are 2 bytes
            if store is None:
                continue
            if value is None:
                batch.delete(key, store)
            else:
                batch.put(key, value, store)
            if key.startswith(_ACTUAL):
                if value is None:
                    self._waiting.discard(key[len(_ACTUAL):])
                else:
                    self._waiting.add(key[len(_ACTUAL):])
            count += 1
        self._db.write(batch)
        return count

    def _complete(self, made: list[tuple[str, float]], actual_s: float,
                  pickup_day: int | None) -> None:
        # a keyed model's entries come last: an unrouted trip costs one comparison
        keyed = [entry for entry in made if entry[0] == KEYED or
                 entry[0].startswith(_KEYED_MARK)] if made and (
            made[-1][0] == KEYED or made[-1][0].startswith(_KEYED_MARK)) else []
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
        # the column families hold the database open: let them go first
        del self._predictions, self._actuals, self._handles
        self._db.close()


def _open(path: Path, ttl_s: int) -> Rdict:
    """The join store, its two column families created where missing. A store of an
    earlier release (one key space, rocksdict's own value encoding) is dropped: the
    changelog replay at assignment rebuilds whatever it held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.create_missing_column_families(True)
    options.set_write_buffer_size(_MEMTABLE_BYTES)
    table = BlockBasedOptions()
    table.set_bloom_filter(_BLOOM_BITS_PER_KEY, False)
    options.set_block_based_table_factory(table)
    try:
        if path.exists() and not set(_STORES.values()) <= set(Rdict.list_cf(str(path))):
            Rdict.destroy(str(path))
            event(log, "evaluation.store_rebuilt", path=str(path),
                  reason="written by an earlier release")
        db = Rdict(str(path), options=options, access_type=AccessType.with_ttl(ttl_s),
                   column_families={name: options for name in _STORES.values()})
    except Exception as exc:  # rocksdict raises plain Exception (e.g. a held lock)
        raise StorageError(f"cannot open the join store {path}: {exc}") from exc
    # No write-ahead log, as in Kafka Streams' stores: the changelog is the durable copy,
    # and an assignment replays it whatever the store held.
    writes = WriteOptions()
    # a property in rocksdict, which its type stub declares as a method
    writes.disable_wal = True  # type: ignore[method-assign,assignment]
    db.set_write_options(writes)
    return db


def _pack(versions: tuple[str, ...], seconds: np.ndarray) -> list[bytes]:
    """Each row's stored value (see ``_PACKED``)."""
    names = "\x00".join(versions).encode()
    header = _PACKED + struct.pack("<H", len(names)) + names
    # header and doubles laid out as one table, then cut into rows: one slice a row
    rows = np.empty((len(seconds), len(header) + 8 * len(versions)), dtype=np.uint8)
    rows[:, :len(header)] = np.frombuffer(header, np.uint8)
    rows[:, len(header):] = np.ascontiguousarray(seconds, dtype="<f8").view(np.uint8).reshape(
        len(seconds), 8 * len(versions))
    raw, width = rows.tobytes(), rows.shape[1]
    return [raw[start:start + width] for start in range(0, len(raw), width)]


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
