"""The rollout controller on the real local broker: it reads the serving states and the
workers' evidence from their topics and writes its decisions back as events."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta

import pytest

from controller.controller import running
from controller.settings import ControllerSettings
from edml.codec import Codec
from edml.contracts import ModelMetadata, RolloutEvidence, RolloutPolicy
from edml.kafka import flush_or_raise, producer
from edml.model_log import latest_per_name, read_model_log
from edml.samples import sample_events
from edml.serving_state import champion, promoted, with_candidate
from edml.settings import KafkaSettings, TopicSettings
from edml.verdict import merge, verdict
from model_publisher.models import status
from model_publisher.publish import announce
from model_publisher.settings import PublisherSettings
from tests.services.workers import read_model_events, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

CODEC = Codec()
STARTED = datetime.now(UTC).replace(microsecond=0)
POLICY = RolloutPolicy(min_paired=300, margin_seconds=6.0)


def _version(name: str) -> ModelMetadata:
    base = next(v for v, _ in sample_events() if isinstance(v, ModelMetadata))
    return dataclasses.replace(base, name="trips", version=name)


def _rollout(kafka: KafkaSettings, topics: TopicSettings) -> ModelMetadata:
    state = with_candidate(champion(_version("v1"), None, "publish"), _version("v2"),
                           "shadow", 0.0, POLICY, STARTED)
    announce(PublisherSettings(kafka=kafka, topics=topics), state)
    return state


def _windows(n: int, worker: str, mean_diff: float, seed: int) -> list[RolloutEvidence]:
    """What a worker would send: one window a second, 50 paired trips each."""
    rng, windows = random.Random(seed), []
    for i in range(n):
        diffs = [rng.gauss(mean_diff, 60.0) for _ in range(50)]
        start = STARTED + timedelta(seconds=i)
        windows.append(RolloutEvidence(
            "trips", "v1", "v2", worker, start, start + timedelta(seconds=1), paired=50,
            sum_diff=sum(diffs), sum_sq_diff=sum(d * d for d in diffs),
            sum_abs_error_champion=50 * 300.0, sum_abs_error_candidate=50 * 300.0 + sum(diffs),
            candidate_scored=50, candidate_batches=5, candidate_call_seconds=0.02))
    return windows


def _send(kafka: KafkaSettings, topic: str, windows: list[RolloutEvidence]) -> None:
    prod = producer(kafka)
    for window in windows:
        prod.produce(topic, key=b"trips", value=CODEC.encode(window))
    flush_or_raise(prod, 10)


def _state(kafka: KafkaSettings, topics: TopicSettings) -> ModelMetadata:
    return latest_per_name(read_model_log(kafka, topics.models, CODEC))["trips"].metadata


def test_a_better_candidate_is_promoted_with_the_evidence_of_every_worker(
    kafka: KafkaSettings, topics: TopicSettings,
) -> None:
    state = _rollout(kafka, topics)
    windows = _windows(4, "w1", -25.0, 1) + _windows(4, "w2", -25.0, 2)  # 400 paired
    _send(kafka, topics.evaluations, windows)
    with running(ControllerSettings(kafka=kafka, topics=topics)) as controller:
        wait_for(lambda: controller.decisions, 30, "a decision")
    assert _state(kafka, topics) == promoted(state, "controller")
    (decision,) = [e for e in read_model_events(kafka, topics) if e.kind == "promoted"]
    expected = verdict(merge(windows[0], windows[1:]), POLICY)
    assert expected is not None and decision.decision == expected.decision
    assert (decision.model_version, decision.decision.rule) == ("v2", "better")


def test_a_controller_restarted_mid_rollout_reaches_the_same_decision(
    kafka: KafkaSettings, topics: TopicSettings,
) -> None:
    state = _rollout(kafka, topics)
    first, rest = _windows(3, "w1", 25.0, 5), _windows(5, "w1", 25.0, 6)
    _send(kafka, topics.evaluations, first)  # 150 paired: not enough for a verdict
    with running(ControllerSettings(kafka=kafka, topics=topics)) as controller:
        wait_for(lambda: controller.caught_up, 30, "the controller caught up")
        assert not controller.decisions
    _send(kafka, topics.evaluations, rest)  # while no controller runs
    with running(ControllerSettings(kafka=kafka, topics=topics)) as again:
        wait_for(lambda: again.decisions, 30, "a decision")
    expected = verdict(merge(first[0], first[1:] + rest), POLICY)
    assert expected is not None and again.decisions[0].decision == expected.decision
    assert again.decisions[0].kind == "rolled_back"
    assert _state(kafka, topics) == dataclasses.replace(state, rollout=None,
                                                        changed_by="controller")


def test_a_manual_promotion_wins_and_the_controller_leaves_the_state_alone(
    kafka: KafkaSettings, topics: TopicSettings,
) -> None:
    state = _rollout(kafka, topics)
    manual = promoted(state, "promote")
    announce(PublisherSettings(kafka=kafka, topics=topics), manual)
    _send(kafka, topics.evaluations, _windows(8, "w1", 25.0, 9))  # it would roll back
    with running(ControllerSettings(kafka=kafka, topics=topics)) as controller:
        wait_for(lambda: controller.caught_up, 30, "the controller caught up")
        controller.decide()
        assert not controller.decisions
    assert _state(kafka, topics) == manual
    assert not [e for e in read_model_events(kafka, topics)
                if e.kind in ("promoted", "rolled_back")]


def test_models_status_shows_the_live_evidence_and_what_the_policy_says_of_it(
    kafka: KafkaSettings, topics: TopicSettings,
) -> None:
    state = _rollout(kafka, topics)
    settings = PublisherSettings(kafka=kafka, topics=topics)
    assert status(settings, "trips").evidence is None  # no pairs yet
    first = _windows(3, "w1", 25.0, 5)
    _send(kafka, topics.evaluations, first)
    gathering = status(settings, "trips")
    assert gathering.state == state and gathering.evidence is not None
    assert (gathering.evidence.paired, gathering.evidence.rule) == (150, "gathering")
    assert gathering.evidence.mean_diff_seconds == pytest.approx(
        sum(w.sum_diff for w in first) / 150)
    more = _windows(5, "w2", 25.0, 6)
    _send(kafka, topics.evaluations, more)
    expected = verdict(merge(first[0], first[1:] + more), POLICY)
    assert expected is not None and status(settings, "trips").evidence == expected.decision


def test_a_keyed_models_rollout_is_judged_on_its_keys_evidence_alone(
    kafka: KafkaSettings, topics: TopicSettings,
) -> None:
    def keyed(version: str, key: str) -> ModelMetadata:
        return dataclasses.replace(_version(version), key=key, routed_by="pickup_zone_id")
    settings = PublisherSettings(kafka=kafka, topics=topics)
    fleet = champion(dataclasses.replace(_version("v1"), routed_by="pickup_zone_id"), None,
                     "publish")
    announce(settings, fleet)
    state = with_candidate(champion(keyed("v1", "132"), None, "publish"), keyed("v2", "132"),
                           "shadow", 0.0, POLICY, STARTED)
    announce(settings, state)
    # the same two versions' pairs under another key, and the fleet's, say "worse": they
    # are not this key's trips
    better = [dataclasses.replace(w, model_key="132") for w in _windows(8, "w1", -25.0, 3)]
    others = [dataclasses.replace(w, model_key=k) for k in ("48", None)
              for w in _windows(8, "w1", 40.0, 4)]
    _send(kafka, topics.evaluations, others + better)
    assert status(settings, "trips", key="132").evidence is not None
    with running(ControllerSettings(kafka=kafka, topics=topics)) as controller:
        wait_for(lambda: controller.decisions, 30, "a decision")
    (decision,) = controller.decisions
    assert (decision.kind, decision.model_key, decision.model_version) == \
        ("promoted", "132", "v2")
    expected = verdict(merge(better[0], better[1:]), POLICY)
    assert expected is not None and decision.decision == expected.decision
    after = status(settings, "trips", key="132").state
    assert after == promoted(state, "controller")
    assert status(settings, "trips").state == fleet  # the fleet model is left alone
