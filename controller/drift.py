"""Drift, judged from the workers' windows: each champion version's merged counts per
event-time day, compared with its reference profile once a day has closed.

Two kinds of evidence, each with its own detector:

- **Inputs and predictions.** Over the trailing ``window_days`` of event time, the
  Jensen-Shannon distance (scipy, base 2: 0 same, 1 disjoint) between the live histogram of
  each monitored feature and the training months' histogram. Thresholds per feature are
  in ``DriftPolicy``; they were set above the largest distance the validation months
  (2019-09..10) and 2020-01..02 reach in the shared samples (``bench/drift_2020.py``).
- **Outcomes.** A day's mean error of the joined trips (predicted - actual: the bias) and
  its mean absolute error, each fed to a Page-Hinkley test (``river``) in minutes, once
  the day's late actuals have come in. The live MAE is also compared with the version's
  validation MAE.

Everything here is a pure function of the windows, so a restarted controller that reads
the evaluations topic again reaches the same findings on the same event-time days.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
from river.drift import PageHinkley
from scipy.spatial.distance import jensenshannon

from edml.contracts import (
    DriftFinding,
    DriftWindow,
    ModelEvent,
    ModelMetadata,
    RetrainRequest,
    model_label,
)
from edml.errors import ArtifactError, EdmlError, ModelError, StorageError
from edml.event_time import MS_PER_DAY, day_number, day_of, wall_ms
from edml.logs import event, get_logger
from edml.profile import FEATURES, PROFILE_FILE, Profile
from edml.settings import StorageSettings
from edml.storage import check_artifact_location, open_store

__all__ = ["DriftPolicy", "DriftTracker", "VersionWatch", "merge_all", "read_profile"]

log = get_logger(__name__)

_PROFILE_RETRY = timedelta(seconds=30)


@dataclass(frozen=True)
class DriftPolicy:
    """When a champion counts as drifted. Defaults documented in the README."""

    window_days: int = 7  # event-time days compared with the reference
    min_requests: int = 300  # requests in that window before inputs are judged
    # and a feature only when the distance sampling noise alone gives is at most this share
    # of its threshold (fewer requests, or a smaller reference, are not judged)
    max_noise_share: float = 0.5
    # Jensen-Shannon distance (base 2) above which a feature has drifted
    thresholds: dict[str, float] = field(default_factory=lambda: {
        "pickup_area": 0.08, "hour_of_week": 0.25, "passenger_count": 0.075,
        "centroid_distance": 0.09, "prediction": 0.15})
    min_joined: int = 20  # joined trips in a day before it feeds the outcome detectors
    late_hours: float = 4.0  # a day is judged this long after it ends (late actuals)
    # Page-Hinkley on the daily mean error and mean absolute error, in minutes
    ph_min_days: int = 5
    ph_delta_minutes: float = 1.0
    ph_threshold_minutes: float = 8.0
    mae_ratio: float = 1.3  # live MAE over the window above validation MAE x this
    quiet_days: int = 7  # after a finding, the same detector stays quiet this long


@dataclass
class _Day:
    requests: int = 0
    histograms: dict[str, np.ndarray] = field(default_factory=dict)
    joined: int = 0
    sum_abs_error: float = 0.0
    sum_error: float = 0.0


def _page_hinkley(test: PageHinkley) -> float:
    """The test's statistic when it fired (the cumulative deviation, minutes), for the
    finding: river keeps it in its state, not in its API."""
    rise = getattr(test, "_sum_increase", 0.0) - getattr(test, "_min_increase", 0.0)
    fall = getattr(test, "_max_decrease", 0.0) - getattr(test, "_sum_decrease", 0.0)
    return float(max(rise, fall))


def _sampling_noise(reference: np.ndarray, live: np.ndarray) -> float:
    """The Jensen-Shannon distance (base 2) two samples of these sizes show with no drift
    at all, about: for counts from one distribution over k bins, E[JSD] ~ (k - 1) / (8 n ln
    2) with n = n_ref n_live / (n_ref + n_live) (the chi-square approximation of JSD).
    Hour of week's 168 bins need ~2,000 requests a week before 0.25 means anything."""
    n_ref, n_live = float(reference.sum()), float(live.sum())
    if n_ref <= 0 or n_live <= 0:
        return float("inf")
    bins = max(int(np.count_nonzero(reference)), 2)
    return float(np.sqrt((bins - 1) * (n_ref + n_live) / (8 * n_ref * n_live * np.log(2))))


class VersionWatch:
    """One champion version's merged days, and its detectors' state."""

    def __init__(self, policy: DriftPolicy, profile: Profile | None = None) -> None:
        self.policy = policy
        self.profile = profile  # judged only with one: until then, windows are merged
        self._days: dict[int, _Day] = {}
        self._watermark_ms = -1  # the latest pickup any worker has counted
        self._judged_through = -1  # the last day judged
        self._bias = PageHinkley(min_instances=policy.ph_min_days,
                                 delta=policy.ph_delta_minutes,
                                 threshold=policy.ph_threshold_minutes, mode="both")
        self._mae = PageHinkley(min_instances=policy.ph_min_days,
                                delta=policy.ph_delta_minutes,
                                threshold=policy.ph_threshold_minutes, mode="up")
        self._quiet_until: dict[str, int] = {}

    @property
    def counted(self) -> bool:
        """Some worker has sent a window of this version's traffic."""
        return bool(self._days)

    @property
    def judged_through(self) -> date | None:
        """The last event-time day judged, if any."""
        return day_of(self._judged_through) if self._judged_through >= 0 else None

    def add(self, window: DriftWindow) -> None:
        day = self._days.setdefault(day_number(window.day), _Day())
        day.requests += window.requests
        for name, counts in window.histograms.items():
            if name in day.histograms:
                day.histograms[name] += np.asarray(counts, dtype=np.int64)
            else:
                day.histograms[name] = np.asarray(counts, dtype=np.int64)
        day.joined += window.joined
        day.sum_abs_error += window.sum_abs_error
        day.sum_error += window.sum_error
        if window.latest_pickup is not None:
            latest_ms = wall_ms(window.latest_pickup)
            self._watermark_ms = max(self._watermark_ms, latest_ms)

    def findings(self) -> list[DriftFinding]:
        """What the days closed since the last call show, in event-time order."""
        found: list[DriftFinding] = []
        if not self._days or self.profile is None:
            return found
        # a day is judged once event time is ``late_hours`` past its end: by then every
        # worker has counted its requests and the actuals of its trips have come in
        late = int(self.policy.late_hours * 3_600_000)
        closed = (self._watermark_ms - late) // MS_PER_DAY - 1
        for day in range(max(self._judged_through + 1, min(self._days)), closed + 1):
            found += self._judge_inputs(day) + self._judge_outcomes(day)
            self._judged_through = day
        return found

    def _quiet(self, detector: str, day: int) -> bool:
        return day < self._quiet_until.get(detector, -1)

    def _found(self, detector: str, day: int, statistic: float, threshold: float,
               start: int, detail: str) -> list[DriftFinding]:
        if self._quiet(detector, day):
            return []
        self._quiet_until[detector] = day + self.policy.quiet_days
        return [DriftFinding(detector, round(statistic, 4), threshold, day_of(start), day_of(day),
                        detail)]

    def _window(self, last: int) -> list[_Day]:
        return [self._days[d] for d in range(last - self.policy.window_days + 1, last + 1)
                if d in self._days]

    def _judge_inputs(self, day: int) -> list[DriftFinding]:
        assert self.profile is not None
        if day - min(self._days) + 1 < self.policy.window_days:
            return []  # a part of a week is no week: hour of week would differ by itself
        days = self._window(day)
        requests = sum(d.requests for d in days)
        if requests < self.policy.min_requests:
            return []
        found: list[DriftFinding] = []
        start = day - self.policy.window_days + 1
        for name in FEATURES:
            threshold = self.policy.thresholds.get(name)
            reference = self.profile.reference.get(name)
            if threshold is None or reference is None:
                continue
            live = sum((d.histograms[name] for d in days if name in d.histograms),
                       np.zeros(self.profile.bins[name], dtype=np.int64))
            if _sampling_noise(reference, live) > threshold * self.policy.max_noise_share:
                continue  # too few counts to tell a shift from sampling noise
            distance = float(jensenshannon(reference, live, base=2))
            if distance > threshold:
                found += self._found(f"inputs.{name}", day, distance, threshold, start,
                                     f"{requests} requests over {len(days)} days")
        return found

    def _judge_outcomes(self, day: int) -> list[DriftFinding]:
        assert self.profile is not None
        today = self._days.get(day)
        if today is None or today.joined < self.policy.min_joined:
            return []
        found: list[DriftFinding] = []
        bias_min = today.sum_error / today.joined / 60
        mae_min = today.sum_abs_error / today.joined / 60
        self._bias.update(bias_min)  # type: ignore[no-untyped-call]  # river is untyped
        if self._bias.drift_detected:
            found += self._found("outcomes.bias", day, _page_hinkley(self._bias),
                                 self.policy.ph_threshold_minutes, day,
                                 f"mean error {bias_min:+.2f} min on {today.joined} trips "
                                 f"(validation {self.profile.validation.bias / 60:+.2f})")
        self._mae.update(mae_min)  # type: ignore[no-untyped-call]
        if self._mae.drift_detected:
            found += self._found("outcomes.mae_change", day, _page_hinkley(self._mae),
                                 self.policy.ph_threshold_minutes, day,
                                 f"MAE {mae_min:.2f} min on {today.joined} trips")
        days = [d for d in self._window(day) if d.joined]
        joined = sum(d.joined for d in days)
        if joined >= self.policy.min_requests and self.profile.validation.mae > 0:
            ratio = sum(d.sum_abs_error for d in days) / joined / self.profile.validation.mae
            if ratio > self.policy.mae_ratio:
                found += self._found("outcomes.mae_vs_validation", day, ratio,
                                     self.policy.mae_ratio,
                                     day - self.policy.window_days + 1,
                                     f"live MAE {ratio:.2f}x the validation MAE on {joined} "
                                     "trips")
        return found


@dataclass
class _Unrequested:
    """Findings on a champion since its model's last retrain request."""

    version: str
    first_day: date  # the first finding's day: where the new regime shows
    reasons: set[str] = field(default_factory=set)


class DriftTracker:
    """Per model (a fleet model, and each keyed model: named by its label, as
    ``trips[132]``): its champion's watch, the findings and retrain requests already made
    (read back from the model-events topic, so a restarted controller repeats neither),
    and the retrain policy, all in event time:

    - findings on a champion since the model's last request are gathered; once event time
      is ``retrain_settle_days`` past the first of them, a request is made, proposing the
      ``retrain_window_days`` before that finding and the settle days after it as the
      training window: the new regime's first days, not only the old one's last;
    - unless the model has a request open about this champion (made, not answered by a
      published version carrying its id, its window ended less than
      ``retrain_timeout_days`` ago) or a
      candidate in rollout: promoted, it is a new champion with a watch of its own;
      rolled back, the findings gathered meanwhile ask then."""

    def __init__(self, policy: DriftPolicy, read_profile: Callable[[ModelMetadata], Profile],
                 retrain_window_days: int = 14, retrain_settle_days: int = 7,
                 retrain_timeout_days: int = 14) -> None:
        self.policy, self._read_profile = policy, read_profile
        self._window_days, self._settle_days = retrain_window_days, retrain_settle_days
        self._timeout_days = retrain_timeout_days
        self._watches: dict[tuple[str, str], VersionWatch] = {}
        self._unreadable: set[tuple[str, str]] = set()  # profiles that will never load
        self._retry_at: dict[tuple[str, str], datetime] = {}  # storage was away
        self._seen: set[tuple[str, str, str, date]] = set()  # model, version, detector, day
        self._requests: dict[str, ModelEvent] = {}  # model -> its latest retrain request
        self._unrequested: dict[str, _Unrequested] = {}  # model -> findings since then
        self._answered: set[str] = set()  # request ids some published version carries

    def _watch(self, model: str, version: str) -> VersionWatch:
        return self._watches.setdefault((model, version), VersionWatch(self.policy))

    def judged_through(self, model: str, version: str) -> date | None:
        watch = self._watches.get((model, version))
        return watch.judged_through if watch is not None else None

    def window(self, window: DriftWindow) -> None:
        self._watch(model_label(window.model_name, window.model_key),
                    window.model_version).add(window)

    def state(self, state: ModelMetadata) -> None:
        """A serving state from the model topic: which versions answer which request."""
        for version in (state, state.candidate, state.previous):
            if version is not None and version.retrain_request is not None:
                self._answered.add(version.retrain_request)

    def model_event(self, model_event: ModelEvent) -> None:
        """The controller's own events, read back (or just made)."""
        model = model_label(model_event.model_name, model_event.model_key)
        if model_event.drift is not None:
            d = model_event.drift
            self._seen.add((model, model_event.model_version, d.detector, d.window_end))
            gathered = self._unrequested.get(model)
            if gathered is None or gathered.version != model_event.model_version:
                gathered = self._unrequested[model] = _Unrequested(
                    model_event.model_version, d.window_end)
            gathered.reasons.add(d.detector)
        if model_event.retrain is not None:
            self._requests[model] = model_event
            self._unrequested.pop(model, None)

    def open_request(self, model: str, through: date | None,
                     champion: str | None = None) -> ModelEvent | None:
        """The model's request still waiting for its answer, with event time judged
        ``through`` this day; given ``champion``, only one made about that version (a
        request about a replaced champion is moot)."""
        latest = self._requests.get(model)
        if latest is None or latest.retrain is None or \
                latest.retrain.request_id in self._answered:
            return None
        if champion is not None and latest.retrain.champion_version != champion:
            return None
        if through is not None and \
                through > latest.retrain.train_end + timedelta(days=self._timeout_days):
            return None
        return latest

    def events(self, state: ModelMetadata, worker: str, now: datetime) -> list[ModelEvent]:
        """What the champion's newly closed days show: drift events, and a retrain
        request where the policy asks for one."""
        key = (state.label, state.version)
        watch = self._watch(*key)
        if watch.profile is None and (not watch.counted or not self._profile(state, watch,
                                                                              now)):
            return []  # a profile is read once there is traffic to judge (keys: thousands)
        out: list[ModelEvent] = []
        for finding in watch.findings():
            if (*key, finding.detector, finding.window_end) in self._seen:
                continue  # made before a restart
            made = ModelEvent(state.name, state.version, "drift_detected", worker, now,
                              message=f"{finding.detector}: {finding.detail}", drift=finding,
                              model_key=state.key)
            self.model_event(made)
            out.append(made)
        request = self._request(state, watch.judged_through, worker, now)
        if request is not None:
            self.model_event(request)
            out.append(request)
        return out

    def _request(self, state: ModelMetadata, through: date | None, worker: str,
                 now: datetime) -> ModelEvent | None:
        gathered = self._unrequested.get(state.label)
        if gathered is None or gathered.version != state.version or through is None or \
                self.open_request(state.label, through, state.version) is not None:
            return None
        if state.rollout is not None:
            return None  # a candidate is being judged: its verdict comes first
        end = gathered.first_day + timedelta(days=self._settle_days)
        if through < end:
            return None  # the new regime's first days are still coming
        request = RetrainRequest(
            request_id=f"retrain-{state.name}-" + ("" if state.key is None else
                                                   f"{state.key}-")
            + f"{state.version}-{gathered.first_day:%Y%m%d}",
            reason="; ".join(sorted(gathered.reasons)),
            train_start=gathered.first_day - timedelta(days=self._window_days - 1),
            train_end=end, champion_version=state.version)
        return ModelEvent(state.name, state.version, "retrain_requested", worker, now,
                          message=f"{request.reason}: retrain on "
                          f"{request.train_start}..{request.train_end}", retrain=request,
                          model_key=state.key)

    def _profile(self, state: ModelMetadata, watch: VersionWatch, now: datetime) -> bool:
        """Read the champion's reference profile into its watch; False while it cannot
        be (none named, refused, or storage away: retried every little while)."""
        key = (state.label, state.version)
        if state.profile is None or key in self._unreadable or \
                now < self._retry_at.get(key, now):
            return False
        try:
            watch.profile = self._read_profile(state)
        except StorageError as exc:  # storage away: the windows wait, merged
            self._retry_at[key] = now + _PROFILE_RETRY
            event(log, "drift.profile_unavailable", logging.WARNING, model=state.name,
                  version=state.version, error=str(exc),
                  retry_in_s=_PROFILE_RETRY.total_seconds())
            return False
        except EdmlError as exc:  # missing or malformed: this version is not judged
            self._unreadable.add(key)
            event(log, "drift.profile_refused", logging.ERROR, model=state.name,
                  version=state.version, error=str(exc))
            return False
        return True


def read_profile(storage: StorageSettings, state: ModelMetadata) -> Profile:
    """A champion's reference profile, read from its artifact: only under the configured
    storage roots and only the file the publisher writes, as the workers load models."""
    if state.profile != PROFILE_FILE:
        raise ArtifactError(f"{state.name} {state.version}: profile {state.profile!r} is not "
                            f"{PROFILE_FILE}")
    check_artifact_location(state.storage_uri, state.name, state.version, storage.roots,
                            state.key)
    data = open_store(storage, state.storage_uri).read_file(state.storage_uri, PROFILE_FILE)
    try:
        return Profile.from_json(json.loads(data))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{state.storage_uri}{PROFILE_FILE}: not JSON: {exc}") from exc


def merge_all(windows: Iterable[DriftWindow], profile: Profile,
              policy: DriftPolicy) -> VersionWatch:
    """A watch fed with ``windows`` (for tests and ``edml models status``)."""
    watch = VersionWatch(policy, profile)
    for window in windows:
        watch.add(window)
    return watch
