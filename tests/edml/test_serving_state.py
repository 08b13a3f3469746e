"""How a model's serving state changes: champion, candidate, promotion and rollback."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from edml.contracts import ModelMetadata, RolloutPolicy
from edml.errors import ModelError
from edml.samples import sample_events
from edml.serving_state import champion, parse_policy, promoted, rolled_back, with_candidate

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _version(name: str) -> ModelMetadata:
    base = next(v for v, _ in sample_events() if isinstance(v, ModelMetadata))
    return dataclasses.replace(base, version=name)


def test_a_new_champion_remembers_the_one_it_replaced() -> None:
    v1 = champion(_version("v1"), None, "publish")
    v2 = champion(_version("v2"), v1, "publish")
    assert (v2.version, v2.previous and v2.previous.version, v2.rollout) == ("v2", "v1", None)
    assert v2.previous is not None and v2.previous.previous is None  # never a chain


def test_a_candidate_joins_the_champion_and_promotion_swaps_them() -> None:
    v1 = champion(_version("v1"), None, "publish")
    state = with_candidate(v1, _version("v2"), "canary", 0.1, RolloutPolicy(), NOW)
    assert state.version == "v1" and state.candidate is not None
    assert (state.candidate.version, state.rollout and state.rollout.weight) == ("v2", 0.1)

    after = promoted(state, "controller")
    assert (after.version, after.rollout, after.changed_by) == ("v2", None, "controller")
    assert after.previous is not None and after.previous.version == "v1"


def test_rollback_withdraws_the_candidate_first_then_goes_to_the_previous_champion() -> None:
    v2 = champion(_version("v2"), champion(_version("v1"), None, "publish"), "publish")
    trying = with_candidate(v2, _version("v3"), "shadow", 0.5, RolloutPolicy(), NOW)
    assert trying.rollout is not None and trying.rollout.weight == 0.0  # shadow answers none

    withdrawn = rolled_back(trying, "rollback")
    assert (withdrawn.version, withdrawn.rollout) == ("v2", None)
    back = rolled_back(withdrawn, "rollback")
    assert (back.version, back.previous) == ("v1", None)
    with pytest.raises(ModelError, match="no candidate and no previous champion"):
        rolled_back(back, "rollback")


@pytest.mark.parametrize(("current", "version", "mode", "weight", "error"), [
    (None, "v2", "shadow", 0.0, "has no champion yet"),
    ("v1", "v1", "shadow", 0.0, "is the champion already"),
    ("v1", "v2", "blue-green", 0.0, "expected one of shadow, canary"),
    ("v1", "v2", "canary", 0.0, r"expected a share of trips in \(0, 1\]"),
    ("v1", "v2", "canary", 1.5, r"expected a share of trips in \(0, 1\]"),
])
def test_a_rollout_that_cannot_start_is_refused(current: str | None, version: str, mode: str,
                                                weight: float, error: str) -> None:
    state = champion(_version(current), None, "publish") if current else None
    with pytest.raises(ModelError, match=error):
        with_candidate(state, _version(version), mode, weight, RolloutPolicy(), NOW)


def test_promoting_without_a_candidate_is_refused() -> None:
    with pytest.raises(ModelError, match="no candidate to promote"):
        promoted(champion(_version("v1"), None, "publish"), "promote")


def test_a_policy_is_the_defaults_with_what_is_given() -> None:
    policy = parse_policy(["min_paired=500", "confidence=0.99"])
    assert policy == dataclasses.replace(RolloutPolicy(), min_paired=500, confidence=0.99)
    assert isinstance(policy.min_paired, int)


@pytest.mark.parametrize(("pairs", "error"), [
    (["speed=3"], "expected NAME=VALUE with NAME one of min_paired"),
    (["min_paired=lots"], "'lots' is not a number"),
    (["confidence=1.0"], "expected 0.5 <= c < 1"),
    (["min_paired=50", "max_paired=10"], "expected 2 <= min_paired <= max_paired"),
])
def test_a_bad_policy_setting_is_one_clear_error(pairs: list[str], error: str) -> None:
    with pytest.raises(ModelError, match=error):
        parse_policy(pairs)
