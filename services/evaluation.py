"""Live evaluation: predictions joined with the trips' actual durations, per model version.

The records and actuals topics are both keyed by trip id with the same partition count, and
the scoring loop consumes both in one group with the range assignor, so a trip's request and
its actual land on the same worker. Whichever arrives second completes the join; the other
waits in RocksDB (``<data dir>/joins.rocksdb``), opened with a time-to-live of the
evaluation horizon: RocksDB drops older halves itself while it compacts, so no sweep ever
blocks the scoring loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rocksdict import AccessType, Rdict, WriteBatch

from edml.errors import StorageError
from services.metrics import Metrics

__all__ = ["LiveEvaluator"]

_PREDICTED, _ACTUAL = b"p:", b"a:"


class LiveEvaluator:
    def __init__(self, path: Path, metrics: Metrics, horizon_s: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = Rdict(str(path), access_type=AccessType.with_ttl(int(horizon_s)))
        except Exception as exc:  # rocksdict raises plain Exception (e.g. a held lock)
            raise StorageError(f"cannot open the join store {path}: {exc}") from exc
        self._metrics = metrics
        self.joined = 0

    def predicted(self, version: str, pairs: Iterable[tuple[str, float]]) -> None:
        """A batch of predictions: one multi-get and one write batch, not a call per trip."""
        pairs = list(pairs)
        keys = [trip_id.encode() for trip_id, _ in pairs]
        actuals: list[bytes | None] = self._db.get([_ACTUAL + key for key in keys]) or []
        batch = WriteBatch()
        for (_, seconds), key, actual in zip(pairs, keys, actuals, strict=True):
            if actual is not None:
                self._complete(version, seconds, float(actual))
                batch.delete(_ACTUAL + key)
            else:
                batch.put(_PREDICTED + key, f"{version}\t{seconds!r}".encode())
        self._db.write(batch)

    def actual(self, trip_id: str, duration_s: float) -> None:
        key = trip_id.encode()
        predicted = self._db.get(_PREDICTED + key)
        if predicted is not None:
            version, seconds = predicted.decode().split("\t")
            self._complete(version, float(seconds), duration_s)
            del self._db[_PREDICTED + key]
        else:
            self._db[_ACTUAL + key] = repr(duration_s).encode()

    def _complete(self, version: str, predicted_s: float, actual_s: float) -> None:
        self._metrics.live_abs_error_minutes.labels(version).observe(
            abs(predicted_s - actual_s) / 60.0)
        self.joined += 1

    def close(self) -> None:
        self._db.close()
