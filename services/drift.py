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
        self._count([(key, version)], profile.bins,
                    profile.bin_indices(columns, predicted_seconds),
                    np.asarray(columns["pickup_datetime"], dtype=np.int64),
                    np.zeros(len(predicted_seconds), np.intp),
                    np.isfinite(predicted_seconds))  # NaN where the champion failed a row

    def keyed_requests(self, fleet: Profile, columns: Mapping[str, np.ndarray],
                       answers: Iterable[KeyedAnswers]) -> None:
        """One batch's trips as its keyed models answered them, counted per key. Binned
        and counted in one pass for every key whose profile bins as ``fleet`` does (every
        edml-trained one does: one zone table, fixed edges), else that key's rows alone:
        numpy calls per key would cost a batch of a hundred keys milliseconds."""
        pickup_ms = np.asarray(columns["pickup_datetime"], dtype=np.int64)
        alike: list[KeyedAnswers] = []
        for a in answers:
            if a.profile is None:
                continue
            if a.profile.binning == fleet.binning:
                alike.append(a)
            else:
                self._count([(a.key, a.version)], a.profile.bins, a.profile.bin_indices(
                    {name: column[a.rows] for name, column in columns.items()}, a.seconds),
                    pickup_ms[a.rows], np.zeros(a.rows.size, np.intp), np.isfinite(a.seconds))
        if not alike:
            return
        predicted = np.full(len(pickup_ms), np.nan)
        for a in alike:
            predicted[a.rows] = a.seconds
        rows = np.concatenate([a.rows for a in alike])
        self._count([(a.key, a.version) for a in alike], fleet.bins,
                    {name: index[rows] for name, index in
                     fleet.bin_indices(columns, predicted).items()},
                    pickup_ms[rows], np.repeat(np.arange(len(alike)), [a.rows.size for a in alike]),
                    np.isfinite(predicted[rows]))

    def _count(self, owners: list[tuple[str | None, str]], bins: Mapping[str, int],
               index: Mapping[str, np.ndarray], pickup_ms: np.ndarray, owner: np.ndarray,
               answered: np.ndarray) -> None:
        """Rows into the windows of their owner (a (key, version) of ``owners``) and pickup
        day: each histogram counted for all owners and days with one ``bincount``."""
        days, day_at = np.unique(pickup_ms // MS_PER_DAY, return_inverse=True)
        group = owner * days.size + day_at
        groups = len(owners) * days.size
        requests = np.bincount(group, minlength=groups)
        latest = np.full(groups, np.iinfo(np.int64).min)
        np.maximum.at(latest, group, pickup_ms)
        counts = {}
        for name, size in bins.items():
            at, bin_of = (group[answered], index[name][answered]) if name == "prediction" \
                else (group, index[name])
            counts[name] = np.bincount(at * size + bin_of,
                                       minlength=groups * size).reshape(groups, size)
        with self._lock:
            for g in np.flatnonzero(requests).tolist():
                key, version = owners[g // days.size]
                window = self._open.setdefault((key, version, int(days[g % days.size])), _Day())
                window.requests += int(requests[g])
                last = int(latest[g])
                window.latest_pickup_ms = last if window.latest_pickup_ms is None else max(
                    last, window.latest_pickup_ms)
                for name, table in counts.items():
                    if name in window.histograms:
                        window.histograms[name] += table[g]
                    else:
                        window.histograms[name] = table[g].astype(np.int64)

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
