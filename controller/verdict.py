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

from edml.contracts import RolloutDecision, RolloutEvidence, RolloutPolicy

__all__ = ["MIN_BATCHES_FOR_LATENCY", "PROMOTE", "ROLLBACK", "Verdict", "merge", "verdict"]

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


def verdict(evidence: RolloutEvidence, policy: RolloutPolicy) -> Verdict | None:
    """What the policy says of the evidence so far; None: keep gathering."""
    e = evidence
    failure_rate = e.candidate_failures / e.candidate_scored if e.candidate_scored else None
    call_ms = 1000 * e.candidate_call_seconds / e.candidate_batches \
        if e.candidate_batches else None
    z = NormalDist().inv_cdf(0.5 + policy.confidence / 2)
    mean = low = high = None
    if e.paired >= 2:
        mean = e.sum_diff / e.paired
        variance = max(0.0, (e.sum_sq_diff - e.paired * mean * mean) / (e.paired - 1))
        half = z * math.sqrt(variance / e.paired)
        low, high = mean - half, mean + half

    def decided(action: str, rule: str) -> Verdict:
        return Verdict(action, RolloutDecision(
            rule=rule, champion_version=e.champion_version,
            candidate_version=e.candidate_version, paired=e.paired,
            confidence=policy.confidence,
            champion_mae_seconds=e.sum_abs_error_champion / e.paired if e.paired else None,
            candidate_mae_seconds=e.sum_abs_error_candidate / e.paired if e.paired else None,
            mean_diff_seconds=mean, ci_low_seconds=low, ci_high_seconds=high,
            candidate_failure_rate=failure_rate, candidate_call_ms=call_ms))

    # health first, at once: no accuracy makes up for failing or slow answers
    if failure_rate is not None and failure_rate > policy.max_failure_rate:
        return decided(ROLLBACK, "failures")
    if call_ms is not None and e.candidate_batches >= MIN_BATCHES_FOR_LATENCY and \
            call_ms > policy.latency_slo_ms:
        return decided(ROLLBACK, "latency")
    if e.paired < policy.min_paired or low is None or high is None:
        return None
    if high < -policy.margin_seconds:
        return decided(PROMOTE, "better")
    if low > policy.margin_seconds:
        return decided(ROLLBACK, "worse")
    if e.paired >= policy.max_paired:
        return decided(ROLLBACK, "inconclusive")
    return None
