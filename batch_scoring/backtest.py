"""The backtest that gates a publication: the candidate and the current champion score the
same recent trips, and a candidate worse by the rollout policy's margin is refused (or
published only in shadow) before any live trip sees it.

It is the controller's judgement on history instead of live traffic: the per-trip paired
difference (candidate's absolute error minus the champion's), its mean and interval at the
policy's confidence (``edml.verdict.summarize``), and "worse" meaning the whole interval
lies above the policy's margin, or the candidate fails on more trips than the policy
allows. An inconclusive backtest passes: live evidence decides then."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from batch_scoring.score import predict_trips
from batch_scoring.trips import read_source
from batch_scoring.versions import pickups_utc_ms
from edml.contracts import ModelMetadata, RolloutDecision, RolloutEvidence, RolloutPolicy
from edml.errors import DataError
from edml.loader import ModelLoader
from edml.savedmodel import Predictor
from edml.settings import StorageSettings
from edml.verdict import summarize

__all__ = ["Backtest", "backtest", "recent_trips"]


@dataclass(frozen=True)
class Backtest:
    days: int
    decision: RolloutDecision  # both MAEs, the mean paired difference and its interval
    worse: bool
    why: str  # what the figures say, in a line

    def metrics(self) -> dict[str, float]:
        """What goes into the published version's metrics."""
        d = self.decision
        figures = {"backtest_days": float(self.days), "backtest_trips": float(d.paired),
                   "backtest_mae_minutes": _minutes(d.candidate_mae_seconds),
                   "backtest_champion_mae_minutes": _minutes(d.champion_mae_seconds),
                   "backtest_mean_diff_seconds": d.mean_diff_seconds,
                   "backtest_ci_low_seconds": d.ci_low_seconds,
                   "backtest_ci_high_seconds": d.ci_high_seconds}
        return {k: float(v) for k, v in figures.items() if v is not None}


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 60


def recent_trips(sources: Sequence[str], days: int, cache_dir: Path) -> pd.DataFrame:
    """The trips of the latest ``days`` pickup days in ``sources`` whose actual duration
    is known."""
    frames = [read_source(source, cache_dir) for source in sources]
    trips = pd.concat(frames, ignore_index=True).dropna(subset=["duration_seconds"])
    if trips.empty:
        raise DataError("no trips with a known duration to backtest on in "
                        + ", ".join(sources))
    day = trips["pickup_datetime"].dt.normalize()
    return trips[day > day.max() - pd.Timedelta(days=days)].reset_index(drop=True)


def backtest(candidate: Predictor, candidate_version: str, champion: ModelMetadata,
             trips: pd.DataFrame, storage: StorageSettings, cache_dir: Path,
             policy: RolloutPolicy, days: int) -> Backtest:
    """Score ``trips`` with both versions (the champion fetched and loaded as a worker
    would), and judge the candidate as the controller would."""
    theirs = predict_trips(trips, candidate)
    mine = predict_trips(trips, ModelLoader(storage, cache_dir).load(champion).model)
    actual = trips["duration_seconds"].to_numpy(np.float64)
    paired = np.isfinite(mine) & np.isfinite(theirs) & np.isfinite(actual)
    their_error, my_error = np.abs(theirs - actual)[paired], np.abs(mine - actual)[paired]
    diff = their_error - my_error
    pickups = trips["pickup_datetime"]
    evidence = RolloutEvidence(
        model_name=champion.name, champion_version=champion.version,
        candidate_version=candidate_version, worker="backtest",
        window_start=_utc(pickups.min()), window_end=_utc(pickups.max()),
        paired=int(paired.sum()), sum_diff=float(diff.sum()),
        sum_sq_diff=float((diff * diff).sum()),
        sum_abs_error_champion=float(my_error.sum()),
        sum_abs_error_candidate=float(their_error.sum()),
        candidate_scored=len(trips), candidate_failures=int(np.isnan(theirs).sum()))
    d = summarize(evidence, policy, rule="backtest")
    failing = (d.candidate_failure_rate or 0.0) > policy.max_failure_rate
    worse = failing or (d.ci_low_seconds is not None
                        and d.ci_low_seconds > policy.margin_seconds)
    if d.mean_diff_seconds is None or d.ci_low_seconds is None or d.ci_high_seconds is None:
        why = f"{d.paired} paired trips: too few to judge"
    else:
        why = (f"{d.paired:,} trips of the last {days} days: candidate minus champion "
               f"{d.mean_diff_seconds:+.1f} s per trip, {d.confidence:.0%} interval "
               f"[{d.ci_low_seconds:+.1f}, {d.ci_high_seconds:+.1f}] s (margin "
               f"{policy.margin_seconds:g} s)")
    if failing:
        why += f"; it gave no duration for {d.candidate_failure_rate:.2%} of the trips"
    return Backtest(days, d, worse, why)


def _utc(pickup: pd.Timestamp) -> datetime:
    """A New York wall-clock pickup as a UTC instant, by the as-of rule's own conversion."""
    return datetime.fromtimestamp(int(pickups_utc_ms(pd.Series([pickup]))[0]) / 1000, UTC)
