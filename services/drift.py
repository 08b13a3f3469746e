"""What one worker sees of its champion's traffic, by event-time day: histograms of the
inputs and predictions in the bins of the version's reference profile, and sums of its
errors once the actual durations are joined. Counts and sums, so that the controller adds
up any number of workers' windows before it compares them with the reference
(``controller.drift``)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from edml.contracts import DriftWindow
from edml.event_time import MS_PER_DAY, day_of, from_wall_ms
from edml.profile import Profile

__all__ = ["DriftMonitor"]


@dataclass
class _Day:
    requests: int = 0
    histograms: dict[str, np.ndarray] = field(default_factory=dict)
    latest_pickup_ms: int | None = None
    joined: int = 0
    sum_abs_error: float = 0.0
    sum_sq_error: float = 0.0
    sum_error: float = 0.0


class DriftMonitor:
    """Running counts per (version, event-time day), drained into ``DriftWindow`` records."""

    def __init__(self, model_name: str, worker: str) -> None:
        self._name, self._worker = model_name, worker
        self._open: dict[tuple[str, int], _Day] = {}
        self._lock = threading.Lock()  # joins may come from a partition's restore callback

    def requests(self, version: str, profile: Profile, columns: Mapping[str, np.ndarray],
                 predicted_seconds: np.ndarray) -> None:
        """One batch the version answered: its rows binned, per pickup day (a batch
        rarely spans more than two)."""
        pickup_ms = np.asarray(columns["pickup_datetime"], dtype=np.int64)
        days = pickup_ms // MS_PER_DAY
        bins = profile.bin_indices(columns, predicted_seconds)
        answered = np.isfinite(predicted_seconds)  # NaN where the champion failed a row
        with self._lock:
            for day in np.unique(days).tolist():
                rows = days == day
                window = self._open.setdefault((version, day), _Day())
                window.requests += int(rows.sum())
                latest = int(pickup_ms[rows].max())
                window.latest_pickup_ms = max(latest, window.latest_pickup_ms or latest)
                for name, index in bins.items():
                    counted = rows & answered if name == "prediction" else rows
                    counts = np.bincount(index[counted], minlength=profile.bins[name])
                    if name in window.histograms:
                        window.histograms[name] += counts
                    else:
                        window.histograms[name] = counts.astype(np.int64)

    def outcome(self, version: str, pickup_day: int, predicted_s: float,
                actual_s: float) -> None:
        """One joined trip of the version's: ``pickup_day`` in days since 1970 (wall
        clock)."""
        error = predicted_s - actual_s
        with self._lock:
            window = self._open.setdefault((version, pickup_day), _Day())
            window.joined += 1
            window.sum_abs_error += abs(error)
            window.sum_sq_error += error * error
            window.sum_error += error

    def drain(self, now: datetime | None = None) -> list[DriftWindow]:
        """What was counted since the last drain, a record per (version, day)."""
        sent = now or datetime.now(UTC)
        with self._lock:
            closed, self._open = self._open, {}
        return [DriftWindow(
            model_name=self._name, model_version=version, worker=self._worker,
            day=day_of(day), requests=w.requests,
            histograms={k: v.tolist() for k, v in w.histograms.items()},
            latest_pickup=None if w.latest_pickup_ms is None
            else from_wall_ms(w.latest_pickup_ms),
            joined=w.joined, sum_abs_error=w.sum_abs_error, sum_sq_error=w.sum_sq_error,
            sum_error=w.sum_error, sent_at=sent) for (version, day), w in closed.items()]
