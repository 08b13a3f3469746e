"""``edml controller``: follows the model topic (the serving states), the evaluations
topic (the workers' rollout evidence and drift windows) and the model-events topic (its
own earlier events). When a rollout's policy reaches a verdict (a fleet model's, or a keyed
model's: each key's rollout is judged on its own trips' evidence), it writes the decision
as a ``ModelEvent`` with its evidence, then the new serving state; when a champion's closed
event-time days show drift (``controller.drift``), it writes ``drift_detected`` events and,
by the retrain policy, a ``retrain_requested`` event.

It keeps no state of its own: on a start it reads both topics from their beginning and
decides nothing until it has caught up with both, so a restarted controller reaches the
decision it would have reached. The decision event goes out before the state: a crash in
between repeats the decision (a duplicate event) rather than losing its evidence. A
manual ``edml models promote/rollback`` always wins: the controller judges only the
rollout the latest state holds, and a state without one is left alone.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from functools import partial

from confluent_kafka import OFFSET_BEGINNING, KafkaError, Message, TopicPartition

from controller.drift import DriftPolicy, DriftTracker, read_profile
from controller.settings import ControllerSettings
from edml.codec import Codec
from edml.contracts import DriftWindow, ModelEvent, ModelKey, ModelMetadata, RolloutEvidence
from edml.errors import BrokerError, DecodeError
from edml.kafka import consumer, flush_or_raise, producer
from edml.logs import event, get_logger
from edml.serving_state import promoted, rolled_back
from edml.verdict import PROMOTE, Verdict, evidence_of, verdict
from model_publisher.publish import announce
from model_publisher.settings import PublisherSettings

__all__ = ["RolloutController", "running"]

log = get_logger(__name__)

# a model (its name, and its key for a keyed model), and a rollout of it
_Model = tuple[str, str | None]
_Pair = tuple[str, str | None, str, str]  # name, key, champion version, candidate version


class RolloutController:
    def __init__(self, settings: ControllerSettings) -> None:
        self._s = settings
        self._codec = Codec.from_settings(settings.registry)
        self._drift = DriftTracker(DriftPolicy(window_days=settings.drift_window_days),
                                   partial(read_profile, settings.storage),
                                   settings.retrain_window_days,
                                   settings.retrain_settle_days,
                                   settings.retrain_timeout_days)
        self._states: dict[_Model, ModelMetadata] = {}  # the fleet models and keyed ones
        self._evidence: dict[_Pair, list[RolloutEvidence]] = defaultdict(list)
        self._decided: set[tuple[_Pair, datetime]] = set()  # rollouts decided, not yet seen
        self._at_end: set[str] = set()  # topics read to their end at least once
        self.decisions: list[ModelEvent] = []
        self.drift_events: list[ModelEvent] = []  # drift_detected and retrain_requested
        self._events = producer(settings.kafka)

    def drift_judged_through(self, model: str, version: str) -> date | None:
        """The last event-time day of ``version``'s traffic the drift detectors judged."""
        return self._drift.judged_through(model, version)

    @property
    def caught_up(self) -> bool:
        t = self._s.topics
        return self._at_end >= {t.models, t.evaluations, t.model_events}

    def run(self, stop: threading.Event) -> None:
        t = self._s.topics
        reader = consumer(self._s.kafka)
        reader.assign([TopicPartition(t.models, 0, OFFSET_BEGINNING),
                       TopicPartition(t.evaluations, 0, OFFSET_BEGINNING),
                       TopicPartition(t.model_events, 0, OFFSET_BEGINNING)])
        event(log, "controller.started", models=t.models, evaluations=t.evaluations)
        try:
            while not stop.is_set():
                for msg in reader.consume(500, self._s.poll_s):
                    self._apply(msg)
                if self.caught_up:
                    self.decide()
        finally:
            reader.close()
            self._events.flush(5)

    def _apply(self, msg: Message) -> None:
        err, topic = msg.error(), msg.topic() or ""
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                if topic not in self._at_end:
                    event(log, "controller.caught_up", topic=topic, offset=msg.offset())
                self._at_end.add(topic)
            elif err.fatal() or not err.retriable():
                raise BrokerError(f"reading {topic}: {err.str()}")
            return
        try:
            if topic == self._s.topics.models:
                model = self._codec.decode(msg.key() or b"", ModelKey)
                if msg.value() is None:  # a keyed model withdrawn: nothing to judge
                    if model.key is not None:
                        self._states.pop((model.name, model.key), None)
                else:
                    state = self._codec.decode(msg.value() or b"", ModelMetadata)
                    self._states[(state.name, state.key)] = state
                    self._drift.state(state)
            elif topic == self._s.topics.model_events:
                self._drift.model_event(self._codec.decode(msg.value() or b"", ModelEvent))
            elif (window := self._codec.decode_if(msg.value() or b"", DriftWindow)) is not None:
                self._drift.window(window)
            else:
                e = self._codec.decode(msg.value() or b"", RolloutEvidence)
                self._evidence[(e.model_name, e.model_key, e.champion_version,
                                e.candidate_version)].append(e)
        except DecodeError as exc:  # the workers raise the alert for the model topic
            event(log, "controller.undecodable", logging.WARNING, topic=topic,
                  offset=msg.offset(), error=str(exc))

    def decide(self) -> None:
        now = datetime.now(UTC)
        for state in list(self._states.values()):
            drift = self._drift.events(state, self._s.name, now)
            for drift_event in drift:
                self._events.produce(self._s.topics.model_events, key=state.name.encode(),
                                     value=self._codec.encode(drift_event))
                self.drift_events.append(drift_event)
                event(log, f"drift.{drift_event.kind}", logging.WARNING, model=state.label,
                      version=state.version, message=drift_event.message)
            if drift:
                flush_or_raise(self._events, self._s.kafka.request_timeout_s)
        for state in list(self._states.values()):
            if state.rollout is None:
                continue
            r = state.rollout
            pair = (state.name, state.key, state.version, r.candidate.version)
            if (pair, r.started_at) in self._decided:
                continue  # our own new state is on its way back to us
            evidence = evidence_of(state, self._evidence.get(pair, []))
            if evidence is None:
                continue
            found = verdict(evidence, r.policy)
            if found is not None:
                self._act(state, found)
                self._decided.add((pair, r.started_at))

    def _act(self, state: ModelMetadata, found: Verdict) -> None:
        d = found.decision
        kind = "promoted" if found.action == PROMOTE else "rolled_back"
        decision = ModelEvent(
            model_name=state.name, model_version=d.candidate_version, kind=kind,
            worker=self._s.name, at=datetime.now(UTC), decision=d,
            message=f"{d.rule}: {d.paired} paired trips", model_key=state.key)
        self._events.produce(self._s.topics.model_events, key=state.name.encode(),
                             value=self._codec.encode(decision))
        flush_or_raise(self._events, self._s.kafka.request_timeout_s)
        new = promoted(state, "controller") if found.action == PROMOTE \
            else rolled_back(state, "controller")
        offset = announce(PublisherSettings(kafka=self._s.kafka, topics=self._s.topics,
                                            registry=self._s.registry), new)
        self.decisions.append(decision)
        event(log, f"rollout.{kind}", model=state.label, candidate=d.candidate_version,
              champion=d.champion_version, rule=d.rule, paired=d.paired,
              mean_diff_s=d.mean_diff_seconds, ci=(d.ci_low_seconds, d.ci_high_seconds),
              now_serving=new.version, offset=offset)


@contextmanager
def running(settings: ControllerSettings) -> Iterator[RolloutController]:
    """A controller in a thread of this process (the demo and the tests), stopped after."""
    controller, stop = RolloutController(settings), threading.Event()
    thread = threading.Thread(target=controller.run, args=(stop,), name="rollout-controller",
                              daemon=True)
    thread.start()
    try:
        yield controller
    finally:
        stop.set()
        thread.join(10)
