"""The verdict on a candidate, from the summed evidence of every worker and window.

The evidence is paired: both versions scored the same trips, so the per-trip difference
(candidate's absolute error minus the champion's) cancels what makes trips hard or easy,
and its mean needs far fewer trips than comparing two halves of the traffic would. The
interval is the normal one on that mean (the controller decides only after
``min_paired`` trips, hundreds by default, where the central limit theorem holds well
for these bounded errors)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from statistics import NormalDist

from edml.contracts import ModelMetadata, RolloutDecision, RolloutEvidence, RolloutPolicy

__all__ = [
    "MIN_BATCHES_FOR_LATENCY",
    "PROMOTE",
    "ROLLBACK",
    "Verdict",
    "evidence_of",
    "merge",
    "summarize",
    "verdict",
]

PROMOTE, ROLLBACK = "promote", "rollback"
MIN_BATCHES_FOR_LATENCY = 10  # a mean of fewer model calls is one slow warm-up, not a trend

_SUMMED = ("paired", "sum_diff", "sum_sq_diff", "sum_abs_error_champion",
           "sum_abs_error_candidate", "candidate_scored", "candidate_failures",
           "candidate_batches", "candidate_call_seconds")


@dataclasses.dataclass(frozen=True)
class Verdict:
    action: str  # PROMOTE or ROLLBACK
    decision: RolloutDecision


def merge(first: RolloutEvidence, windows: Iterable[RolloutEvidence]) -> RolloutEvidence:
    """``first`` plus every window: the sums add, the span widens."""
    total = first
    for e in windows:
        total = dataclasses.replace(
            total, window_start=min(total.window_start, e.window_start),
            window_end=max(total.window_end, e.window_end),
            **{name: getattr(total, name) + getattr(e, name) for name in _SUMMED})
    return total


def evidence_of(state: ModelMetadata, windows: Iterable[RolloutEvidence]
                ) -> RolloutEvidence | None:
    """The merged evidence of ``state``'s rollout (a fleet model's, or one key's): the
    windows of its champion and candidate that ended after it started (an earlier rollout
    of the same pair does not count). None: no rollout, or no evidence yet."""
    if state.rollout is None:
        return None
    r = state.rollout
    mine = [e for e in windows if (e.model_name, e.model_key) == (state.name, state.key)
            and e.window_end >= r.started_at
            and (e.champion_version, e.candidate_version) == (state.version,
                                                              r.candidate.version)]
    return merge(mine[0], mine[1:]) if mine else None


def summarize(evidence: RolloutEvidence, policy: RolloutPolicy,
              rule: str = "gathering") -> RolloutDecision:
    """The evidence's figures: both MAEs, the mean paired difference and its interval at
    the policy's confidence, the candidate's failure rate and mean model-call time."""
    e = evidence
    mean = low = high = None
    if e.paired >= 2:
        mean = e.sum_diff / e.paired
        variance = max(0.0, (e.sum_sq_diff - e.paired * mean * mean) / (e.paired - 1))
        half = NormalDist().inv_cdf(0.5 + policy.confidence / 2) * math.sqrt(
            variance / e.paired)
        low, high = mean - half, mean + half
    return RolloutDecision(
        rule=rule, champion_version=e.champion_version,
        candidate_version=e.candidate_version, paired=e.paired, confidence=policy.confidence,
        champion_mae_seconds=e.sum_abs_error_champion / e.paired if e.paired else None,
        candidate_mae_seconds=e.sum_abs_error_candidate / e.paired if e.paired else None,
        mean_diff_seconds=mean, ci_low_seconds=low, ci_high_seconds=high,
        candidate_failure_rate=e.candidate_failures / e.candidate_scored
        if e.candidate_scored else None,
        candidate_call_ms=1000 * e.candidate_call_seconds / e.candidate_batches
        if e.candidate_batches else None)


def verdict(evidence: RolloutEvidence, policy: RolloutPolicy) -> Verdict | None:
    """What the policy says of the evidence so far; None: keep gathering."""
    d = summarize(evidence, policy)

    def decided(action: str, rule: str) -> Verdict:
        return Verdict(action, dataclasses.replace(d, rule=rule))

    # health first, at once: no accuracy makes up for failing or slow answers
    if d.candidate_failure_rate is not None and \
            d.candidate_failure_rate > policy.max_failure_rate:
        return decided(ROLLBACK, "failures")
    if d.candidate_call_ms is not None and \
            evidence.candidate_batches >= MIN_BATCHES_FOR_LATENCY and \
            d.candidate_call_ms > policy.latency_slo_ms:
        return decided(ROLLBACK, "latency")
    low, high = d.ci_low_seconds, d.ci_high_seconds
    if d.paired < policy.min_paired or low is None or high is None:
        return None
    if high < -policy.margin_seconds:
        return decided(PROMOTE, "better")
    if low > policy.margin_seconds:
        return decided(ROLLBACK, "worse")
    if d.paired >= policy.max_paired:
        return decided(ROLLBACK, "inconclusive")
    return None
