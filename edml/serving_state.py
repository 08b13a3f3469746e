"""How the serving state of a model name changes: every change is a new ``ModelMetadata``
for the model topic, built here and nowhere else (the publisher, ``edml models`` and the
rollout controller all go through these functions).

The state's own fields are the champion; ``rollout`` holds at most one candidate;
``previous`` is the champion the current one replaced, where a rollback goes.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from edml.contracts import CANARY, SHADOW, ModelMetadata, Rollout, RolloutPolicy
from edml.errors import ModelError

__all__ = [
    "MODES",
    "champion",
    "check_candidate",
    "parse_policy",
    "promoted",
    "rolled_back",
    "with_candidate",
]

MODES = (SHADOW, CANARY)


def champion(new: ModelMetadata, current: ModelMetadata | None, by: str) -> ModelMetadata:
    """``new`` serves alone from now on (a rollout in progress ends with it)."""
    return dataclasses.replace(
        new.version_only(), changed_by=by,
        previous=current.version_only() if current is not None
        and current.version != new.version else None)


def check_candidate(current: ModelMetadata | None, name: str, version: str, mode: str,
                    weight: float) -> float:
    """Refuses a rollout that cannot start; returns the weight it runs with."""
    if current is None:
        raise ModelError(f"{name} has no champion yet: publish one first (without --as), "
                         f"then candidates beside it")
    if mode not in MODES:
        raise ModelError(f"rollout mode {mode!r}: expected one of {', '.join(MODES)}")
    if version == current.version:
        raise ModelError(f"{name} {version} is the champion already")
    if mode == SHADOW:
        return 0.0
    if not 0.0 < weight <= 1.0:
        raise ModelError(f"canary weight {weight}: expected a share of trips in (0, 1]")
    return weight


def with_candidate(current: ModelMetadata | None, candidate: ModelMetadata, mode: str,
                   weight: float, policy: RolloutPolicy, now: datetime) -> ModelMetadata:
    """The champion keeps serving; ``candidate`` is scored beside it in ``mode``."""
    weight = check_candidate(current, candidate.name, candidate.version, mode, weight)
    assert current is not None  # checked
    return dataclasses.replace(current, changed_by="publish", rollout=Rollout(
        candidate.version_only(), mode, weight, now, policy))


def promoted(current: ModelMetadata, by: str) -> ModelMetadata:
    """The candidate becomes the champion; the champion becomes ``previous``."""
    if current.rollout is None:
        raise ModelError(f"{current.name} has no candidate to promote (champion "
                         f"{current.version})")
    return dataclasses.replace(current.rollout.candidate, changed_by=by,
                               previous=current.version_only())


def rolled_back(current: ModelMetadata, by: str) -> ModelMetadata:
    """A candidate is withdrawn; without one, the previous champion serves again."""
    if current.rollout is not None:
        return dataclasses.replace(current, rollout=None, changed_by=by)
    if current.previous is None:
        raise ModelError(f"{current.name} has no candidate and no previous champion to go "
                         f"back to (champion {current.version}); use --to VERSION")
    return dataclasses.replace(current.previous, changed_by=by, previous=None)


def parse_policy(pairs: list[str], base: RolloutPolicy | None = None) -> RolloutPolicy:
    """``["min_paired=500", "confidence=0.99"]`` over the defaults (or ``base``)."""
    policy = base or RolloutPolicy()
    known = {f.name: f for f in dataclasses.fields(RolloutPolicy)}
    changes: dict[str, float | int] = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        if name not in known or not text:
            raise ModelError(f"policy {pair!r}: expected NAME=VALUE with NAME one of "
                             f"{', '.join(known)}")
        try:
            changes[name] = int(text) if known[name].type == "int" else float(text)
        except ValueError as exc:
            raise ModelError(f"policy {pair!r}: {text!r} is not a number") from exc
    policy = dataclasses.replace(policy, **changes)  # type: ignore[arg-type]
    if not 0.5 <= policy.confidence < 1.0:
        raise ModelError(f"policy confidence {policy.confidence}: expected 0.5 <= c < 1")
    if policy.min_paired < 2 or policy.max_paired < policy.min_paired:
        raise ModelError(f"policy min_paired {policy.min_paired}, max_paired "
                         f"{policy.max_paired}: expected 2 <= min_paired <= max_paired")
    return policy
