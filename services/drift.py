"""What one worker sees of its champion's traffic, by event-time day: histograms of the
inputs and predictions in the bins of the version's reference profile, and sums of its
errors once the actual durations are joined; the same of each keyed model's traffic (its
key's trips that it answered). Counts and sums, so that the controller adds
up any number of workers' windows before it compares them with the reference
(``controller.drift``)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from edml.contracts import DriftWindow
from edml.event_time import MS_PER_DAY, day_of, from_wall_ms
from edml.profile import Profile
from services.batch import KeyedAnswers

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
    """Running counts per (model key, version, event-time day), drained into
    ``DriftWindow`` records (key None: the fleet model's)."""

    def __init__(self, model_name: str, worker: str) -> None:
        self._name, self._worker = model_name, worker
        self._open: dict[tuple[str | None, str, int], _Day] = {}
        self._lock = threading.Lock()  # joins may come from a partition's restore callback

    def requests(self, version: str, profile: Profile, columns: Mapping[str, np.ndarray],
                 predicted_seconds: np.ndarray, key: str | None = None) -> None:
        """One batch the version (of ``key``'s keyed model) answered: its rows binned, per
        pickup day (a batch rarely spans more than two)."""
        self._count(key, version, profile, profile.bin_indices(columns, predicted_seconds),
                    np.asarray(columns["pickup_datetime"], dtype=np.int64),
                    np.isfinite(predicted_seconds))  # NaN where the champion failed a row

    def keyed_requests(self, fleet: Profile, columns: Mapping[str, np.ndarray],
                       answers: Iterable[KeyedAnswers]) -> None:
        """One batch's trips as its keyed models answered them, counted per key. Binned
        once for the batch where a keyed model's profile bins as ``fleet`` does (every
        edml-trained one does: one zone table, fixed edges), else that key's rows alone:
        a call per key would cost a batch of hundreds of keys milliseconds."""
        profiled = [a for a in answers if a.profile is not None]
        if not profiled:
            return
        predicted = np.full(len(columns["pickup_datetime"]), np.nan)
        for a in profiled:
            predicted[a.rows] = a.seconds
        shared = fleet.bin_indices(columns, predicted)
        pickup_ms = np.asarray(columns["pickup_datetime"], dtype=np.int64)
        for a in profiled:
            assert a.profile is not None
            bins = {name: index[a.rows] for name, index in shared.items()} \
                if a.profile.binning == fleet.binning else a.profile.bin_indices(
                    {name: column[a.rows] for name, column in columns.items()}, a.seconds)
            self._count(a.key, a.version, a.profile, bins, pickup_ms[a.rows],
                        np.isfinite(a.seconds))

    def _count(self, key: str | None, version: str, profile: Profile,
               bins: Mapping[str, np.ndarray], pickup_ms: np.ndarray,
               answered: np.ndarray) -> None:
        days = pickup_ms // MS_PER_DAY
        with self._lock:
            for day in np.unique(days).tolist():
                rows = days == day
                window = self._open.setdefault((key, version, day), _Day())
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
                actual_s: float, key: str | None = None) -> None:
        """One joined trip of the version's (of ``key``'s keyed model): ``pickup_day`` in
        days since 1970 (wall clock)."""
        error = predicted_s - actual_s
        with self._lock:
            window = self._open.setdefault((key, version, pickup_day), _Day())
            window.joined += 1
            window.sum_abs_error += abs(error)
            window.sum_sq_error += error * error
            window.sum_error += error

    def drain(self, now: datetime | None = None) -> list[DriftWindow]:
        """What was counted since the last drain, a record per (key, version, day)."""
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
            sum_error=w.sum_error, sent_at=sent, model_key=key)
            for (key, version, day), w in closed.items()]
