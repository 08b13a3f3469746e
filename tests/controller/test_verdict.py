"""The controller's verdict on paired evidence, and evidence that adds up across workers."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from edml.contracts import RolloutEvidence, RolloutPolicy
from edml.verdict import PROMOTE, ROLLBACK, merge, verdict
from services.evidence import EvidenceWindow

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
POLICY = RolloutPolicy(min_paired=300, max_paired=5000, margin_seconds=6.0, confidence=0.95)


def _evidence(diffs: list[float], worker: str = "w1", scored: int | None = None,
              failures: int = 0, call_s: float = 0.0) -> RolloutEvidence:
    window = EvidenceWindow("trips", worker)
    for i, diff in enumerate(diffs):
        champion_error = 200.0 + (i % 7) * 30  # trips differ; the pair cancels that
        window.paired("v1", champion_error, "v2", champion_error + diff)
    window.scored("v1", "v2", len(diffs) if scored is None else scored, failures, call_s)
    (closed,) = window.drain(T0 + timedelta(minutes=1))
    return closed


def _diffs(n: int, mean: float, sd: float = 60.0, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(mean, sd) for _ in range(n)]


def test_a_candidate_better_by_more_than_the_margin_is_promoted_with_its_evidence() -> None:
    found = verdict(_evidence(_diffs(400, -30.0)), POLICY)
    assert found is not None and found.action == PROMOTE
    d = found.decision
    assert (d.rule, d.paired, d.champion_version, d.candidate_version) == ("better", 400, "v1",
                                                                           "v2")
    assert d.ci_high_seconds is not None and d.ci_high_seconds < -6.0
    assert d.mean_diff_seconds == pytest.approx(
        d.candidate_mae_seconds - d.champion_mae_seconds)  # type: ignore[operator]


def test_a_worse_candidate_is_rolled_back_and_a_close_one_waits() -> None:
    worse = verdict(_evidence(_diffs(400, +30.0)), POLICY)
    assert worse is not None and (worse.action, worse.decision.rule) == (ROLLBACK, "worse")
    assert verdict(_evidence(_diffs(400, -2.0)), POLICY) is None  # within the margin


def test_no_verdict_on_accuracy_before_the_minimum_of_paired_trips() -> None:
    assert verdict(_evidence(_diffs(299, -100.0)), POLICY) is None


def test_a_candidate_never_proven_better_is_withdrawn_at_the_maximum() -> None:
    found = verdict(_evidence(_diffs(5000, 0.0, seed=3)), POLICY)
    assert found is not None and (found.action, found.decision.rule) == (ROLLBACK,
                                                                        "inconclusive")


def test_failures_and_slowness_roll_back_at_once_whatever_the_accuracy() -> None:
    failing = verdict(_evidence(_diffs(10, -100.0), scored=1000, failures=2), POLICY)
    assert failing is not None and failing.decision.rule == "failures"
    assert failing.decision.candidate_failure_rate == pytest.approx(0.002)
    slow = [_evidence([], call_s=0.4) for _ in range(10)]  # 400 ms a model call
    found = verdict(merge(slow[0], slow[1:]), POLICY)
    assert found is not None and found.decision.rule == "latency"


def test_two_workers_summaries_add_up_to_the_verdict_of_one_worker() -> None:
    diffs = _diffs(600, -20.0, seed=11)
    one = verdict(_evidence(diffs), POLICY)
    halves = [_evidence(diffs[:250], "w1"), _evidence(diffs[250:], "w2")]
    two = verdict(merge(halves[0], halves[1:]), POLICY)
    assert one is not None and two is not None
    assert one.action == two.action
    for field in ("paired", "mean_diff_seconds", "ci_low_seconds", "ci_high_seconds",
                  "champion_mae_seconds", "candidate_mae_seconds"):
        assert getattr(two.decision, field) == pytest.approx(getattr(one.decision, field))
