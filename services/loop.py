"""The hot path: a confluent-kafka consume -> score -> produce loop over micro-batches, in a
thread of its own.

faust's per-event stream machinery measured 2-5k events/s here while the broker served
200k+, so records do not pass through it: faust runs the worker (lifecycle, web, CLI) and
this loop does the per-record work in batches (figures in the README).

At-least-once: offsets are committed only after every output of a batch is delivered. A
worker that dies mid-batch is restarted from the last commit, and redoes at most that batch;
outputs are keyed by trip id, so a duplicate is harmless.

A version that fails on a whole batch and on the smoke requests is no record's fault: it is
retired, and the batch is scored again by the version it replaced; with none left, the
loop rewinds to the batch, pauses its partitions and waits for a version.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from confluent_kafka import KafkaError, Message, TopicPartition
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from edml.codec import Codec
from edml.contracts import TripCompleted
from edml.errors import BrokerError, ContractError, RegistryUnavailable, UnfitModel
from edml.event_time import day_number
from edml.kafka import (
    OUTPUT_PRODUCER,
    consumer,
    ensure_topics,
    group_is_empty,
    producer,
    read_partitions,
)
from edml.loader import LoadedVersion
from edml.logs import event, get_logger
from services.batch import (
    KEYED,
    BatchResult,
    Candidate,
    Routing,
    dead_letter,
    dead_letter_key,
    score_batch,
)
from services.drift import DriftMonitor
from services.evaluation import Changes, LiveEvaluator
from services.evidence import EvidenceWindow
from services.keyed_models import KeyedModels
from services.lag import ConsumerLag
from services.metrics import Metrics, observe_many
from services.model_slot import ModelSlot
from services.settings import ScoringSettings

__all__ = ["ScoringLoop"]

log = get_logger(__name__)
_WAITING_LOG_EVERY_S = 30.0  # how often a worker without a model says it is waiting
_REGISTRY_FIRST_WAIT_S = 1.0  # seconds before a batch the registry failed is tried again
_REGISTRY_MAX_WAIT_S = 30.0  # the wait doubles up to this
Retire = Callable[[LoadedVersion, UnfitModel], LoadedVersion | None]


class _NoModel(Exception):
    """Every version of the batch's model was retired: nothing can score it now."""


class ScoringLoop:
    def __init__(self, settings: ScoringSettings, slot: ModelSlot, caught_up: threading.Event,
                 codec: Codec, metrics: Metrics, evaluator: LiveEvaluator, retire: Retire,
                 evidence: EvidenceWindow | None = None, drift: DriftMonitor | None = None,
                 wall_clock: Callable[[], float] = time.time,
                 announced: threading.Event | None = None,
                 keyed: KeyedModels | None = None) -> None:
        self._s, self._slot, self._caught_up = settings, slot, caught_up
        self._keyed = keyed  # a family routed by key: its keyed models
        # set once the model table, caught up, names a version to load: then a worker
        # alone in its group may join while it loads
        self._announced = announced or threading.Event()
        self._retire = retire
        self._evidence = evidence or EvidenceWindow(settings.model_name, settings.worker_id)
        self._drift = drift or DriftMonitor(settings.model_name, settings.worker_id)
        self._drift_sent = time.monotonic()
        self._registry_wait_s = 0.0
        self._codec, self._metrics, self._evaluator = codec, metrics, evaluator
        self._now = wall_clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scoring-loop", daemon=True)
        self.error: BaseException | None = None
        self.subscribed = threading.Event()
        self._delivery_error: KafkaError | None = None
        self._in_batch = False  # a batch is consumed but not yet fully produced
        self.assigned: list[TopicPartition] = []
        self._lag = ConsumerLag(metrics)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            if self._wait_for_model():
                self._consume()
        except BaseException as exc:  # an unexpected failure: the service stops the worker
            self.error = exc
            event(log, "scoring.failed", logging.ERROR, error=repr(exc))

    def _wait_for_model(self) -> bool:
        """Records wait in Kafka, uncommitted, until the model table has caught up and a
        model is loaded: this worker does not even join the group before then, since
        partitions it took while loading would stall, taken from workers that score.
        Unless nobody is in the group (a cold start, a single worker): then it joins while
        its announced version loads (a group join takes seconds too) and holds its
        partitions paused until the version is ready."""
        waited, asked = 0.0, False
        while not self._stop.is_set():
            if self._caught_up.is_set() and self._slot.ready.is_set():
                return True
            if self._caught_up.is_set() and self._announced.is_set() and not asked:
                asked = True
                if group_is_empty(self._s.kafka, self._s.group_id):
                    event(log, "scoring.joining_while_loading", model=self._s.model_name,
                          group=self._s.group_id)
                    return True
            self._stop.wait(0.1)
            waited += 0.1
            if waited >= _WAITING_LOG_EVERY_S:
                event(log, "scoring.waiting_for_model", model=self._s.model_name)
                waited = 0.0
        return False

    def _on_assign(self, consumer_: Any, partitions: list[TopicPartition]) -> None:
        self.assigned = list(partitions)
        event(log, "scoring.assigned", partitions=[f"{p.topic}[{p.partition}]"
                                                   for p in partitions])
        if self._s.evaluate:
            self._restore(partitions)

    def _on_revoke(self, consumer_: Any, partitions: list[TopicPartition]) -> None:
        # Between batches the positions are exactly what is done: commit them before giving
        # the partitions up. Not after a failed batch (close() revokes too): it is redone.
        self._lag.revoked(partitions)
        if self._in_batch:
            self.assigned = []
            return
        try:
            consumer_.commit(asynchronous=False)
        except Exception as exc:
            event(log, "scoring.commit_on_revoke_skipped", error=str(exc))
        self.assigned = []

    def _consume(self) -> None:
        s = self._s
        reader = consumer(s.kafka, s.group_id, **{
            "enable.partition.eof": False,
            # co-partitioned: a trip's request and its actual go to the same worker
            "partition.assignment.strategy": "range",
            "fetch.wait.max.ms": max(1, int(s.batch_wait_s * 1000)),
            "on_commit": self._lag.committed,
        })
        # delivery keeps retrying through a broker outage, for as long as the loop waits
        writer = producer(s.kafka, **OUTPUT_PRODUCER,
                          **{"delivery.timeout.ms": int(s.broker_outage_s * 1000)})
        if s.evaluate:  # the join state's changelog: as many partitions as the actuals;
            # kept as long as a restore reads it (the horizon, and an hour of slack)
            ensure_topics(s.kafka, [NewTopic(
                s.join_changelog, s.topics.partitions, s.topics.replication_factor,
                config={"retention.ms": str(int((s.evaluation_horizon_s + 3600) * 1000))})])
        for topic in (s.topics.predictions, s.topics.dead_letters):
            # learn the output topics' leaders now, not while the first batch waits
            writer.list_topics(topic, timeout=s.kafka.request_timeout_s)
        topics = [s.topics.records] + ([s.topics.actuals] if s.evaluate else [])
        reader.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        self.subscribed.set()
        event(log, "scoring.subscribed", group=s.group_id, records=s.topics.records)
        try:
            if not self._slot.ready.is_set():  # joined while the model loads
                self._paused_until(reader, self._slot.ready.is_set)
            while not self._stop.is_set():
                messages = reader.consume(self._batch_size(), s.batch_wait_s)
                self._lag.show(reader, self.assigned, s.kafka.request_timeout_s)
                if not messages:  # idle: the last counts must not wait for the next record
                    self._flush_drift(writer)
                if messages:
                    self._in_batch = True
                    try:
                        self._process(messages, writer)
                    except _NoModel:
                        self._rewind_and_wait(reader, messages, self._slot.ready.is_set,
                                              "no servable version")
                        self._in_batch = False
                        continue
                    except RegistryUnavailable as exc:
                        self._wait_for_registry(reader, messages, exc)
                        self._in_batch = False
                        continue
                    self._registry_wait_s = 0.0
                    self._in_batch = False
                    reader.commit(asynchronous=True)
        except BaseException:
            # The batch in hand failed: its offsets must not be committed, so that the
            # restarted worker processes it again. Leave without committing.
            reader.close()
            raise
        try:
            self._flush_drift(writer, force=True)  # a clean stop keeps the last counts too
            self._deliver(writer)
        except Exception as exc:
            event(log, "scoring.final_drift_window_lost", error=str(exc))
        try:
            reader.commit(asynchronous=False)  # a clean stop: everything consumed is done
        except Exception as exc:
            event(log, "scoring.final_commit_skipped", error=str(exc))
        reader.close()

    def _wait_for_registry(self, reader: Any, messages: Sequence[Message],
                           exc: RegistryUnavailable) -> None:
        """The registry failed: the batch waits, then is tried again, backing off."""
        self._registry_wait_s = min(max(2 * self._registry_wait_s, _REGISTRY_FIRST_WAIT_S),
                                    _REGISTRY_MAX_WAIT_S)
        self._metrics.dependency_failures.labels("schema_registry").inc()
        retry_at = time.monotonic() + self._registry_wait_s
        self._rewind_and_wait(reader, messages, lambda: time.monotonic() >= retry_at,
                              f"{exc}; retrying in {self._registry_wait_s:g} s")

    def _rewind_and_wait(self, reader: Any, messages: Sequence[Message],
                         until: Callable[[], bool], why: str) -> None:
        """The batch cannot be scored now, and it is nobody's fault: put it back (seek to
        its first offsets), pause the partitions, and keep polling (so the group keeps
        this member) until ``until()``. Nothing is committed or dead-lettered meanwhile."""
        first: dict[tuple[str, int], int] = {}
        for msg in messages:
            if msg.error() is None:
                first.setdefault((msg.topic() or "", msg.partition() or 0), msg.offset() or 0)
        for (topic, partition), offset in first.items():
            reader.seek(TopicPartition(topic, partition, offset))
        reader.pause(reader.assignment())
        event(log, "scoring.paused", logging.ERROR, model=self._s.model_name,
              reason=why, records_wait=len(messages))
        self._paused_until(reader, until)
        event(log, "scoring.resumed", model=self._s.model_name)

    def _paused_until(self, reader: Any, until: Callable[[], bool]) -> None:
        """Keep polling with every partition paused (so the group keeps this member) until
        ``until()``; a partition assigned meanwhile is paused too, and what it gave put
        back."""
        reader.pause(reader.assignment())
        while not self._stop.is_set() and not until():
            for msg in reader.consume(1, 0.2):
                if msg.error() is None:
                    reader.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))
                reader.pause(reader.assignment())
        reader.resume(reader.assignment())

    def _process(self, messages: list[Message], writer: Any) -> None:
        records: list[Message] = []
        actuals: list[Message] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._MAX_POLL_EXCEEDED:  # waited out an outage:
                    event(log, "scoring.rejoining", logging.WARNING, error=err.str())
                    continue  # the next consume rejoins; uncommitted records come again
                if err.fatal() or not err.retriable():
                    raise BrokerError(f"consuming: {err.str()}")
                continue
            (actuals if msg.topic() == self._s.topics.actuals else records).append(msg)
        if records:
            self._score(records, writer)
        if actuals:
            self._join(actuals, writer)
        self._flush_evidence(writer)
        self._flush_drift(writer)
        self._deliver(writer)

    def _flush_evidence(self, writer: Any) -> None:
        """A rollout's evidence goes out with the batch that made it, before that batch's
        commit: the evaluations topic is never behind what the offsets say is done (one
        small message per batch, and only during a rollout)."""
        for evidence in self._evidence.drain(datetime.fromtimestamp(self._now(), UTC)):
            writer.produce(self._s.topics.evaluations, key=evidence.model_name.encode(),
                           value=self._codec.encode(evidence), on_delivery=self._delivered)

    def _flush_drift(self, writer: Any, force: bool = False) -> None:
        """The drift monitors' counts, every ``drift_flush_s``: a window per version and
        event-time day, delivered with the batch in hand."""
        if not force and time.monotonic() - self._drift_sent < self._s.drift_flush_s:
            return
        self._drift_sent = time.monotonic()
        for window in self._drift.drain(datetime.fromtimestamp(self._now(), UTC)):
            writer.produce(self._s.topics.evaluations, key=window.model_name.encode(),
                           value=self._codec.encode(window), on_delivery=self._delivered)

    def _deliver(self, writer: Any) -> None:
        """Every output of the batch delivered, before its offsets are committed. A broker
        that stops answering is waited for (the producer keeps retrying) up to
        ``broker_outage_s``: an outage is nobody's fault and not a reason to exit."""
        started, warned = time.monotonic(), False
        while (remaining := writer.flush(1.0)) > 0 and self._delivery_error is None:
            waited = time.monotonic() - started
            if waited > self._s.broker_outage_s:
                break
            if not warned and waited > self._s.kafka.request_timeout_s:
                warned = True
                event(log, "scoring.waiting_for_broker", logging.WARNING, pending=remaining,
                      bootstrap=self._s.kafka.bootstrap, gives_up_after_s=self._s.broker_outage_s)
        if remaining or self._delivery_error:
            raise BrokerError(f"outputs not delivered: {remaining} pending, "
                              f"error {self._delivery_error}")
        if warned:
            event(log, "scoring.broker_back", waited_s=round(time.monotonic() - started, 1))

    def _delivered(self, error: KafkaError | None, msg: Any) -> None:
        if error is not None:
            self._delivery_error = error

    def _batch_size(self) -> int:
        """Records to take at most: more for a family routed by key, whose batches make a
        model call per key present (``keyed_batch_size``)."""
        lineup = self._slot.lineup()
        routed = lineup is not None and lineup.champion.metadata.routed_by is not None \
            and self._keyed is not None
        return self._s.keyed_batch_size if routed else self._s.batch_size

    def _score(self, records: list[Message], writer: Any) -> None:
        lineup = self._slot.lineup()  # once per batch: no batch sees a swap
        now = self._now()
        while True:
            if lineup is None:
                raise _NoModel
            loaded, challenger = lineup.champion, lineup.candidate
            candidate = None if challenger is None else Candidate(
                challenger.model, challenger.version, lineup.mode, lineup.weight)
            field = loaded.metadata.routed_by  # the serving fleet model names it
            routing = None if field is None or self._keyed is None else \
                Routing(field, self._keyed.serving)
            try:
                result: BatchResult = score_batch(
                    records, loaded.model, loaded.metadata.name, loaded.version, self._codec,
                    int(now * 1000), candidate=candidate, routing=routing)
                break
            except UnfitModel as exc:
                self._retire(loaded, exc)
                lineup = self._slot.lineup()
        if challenger is not None and result.candidate_unfit is not None:
            self._retire(challenger, result.candidate_unfit)  # the champion answered
        if self._keyed is not None:
            for key, unfit in result.keyed_unfit.items():  # the fleet model answered
                self._keyed.unfit(key, unfit)
            for key, unfit in result.keyed_candidate_unfit.items():  # its champion answered
                self._keyed.unfit(key, unfit, candidate=True)
        if loaded.profile is not None and result.columns:
            self._drift.requests(loaded.version, loaded.profile, result.columns,
                                 result.champion_seconds)
            self._drift.keyed_requests(loaded.profile, result.columns, result.keyed_answers)
        topics = self._s.topics
        for out in result.predictions:
            writer.produce(topics.predictions, key=out.key, value=out.value,
                           on_delivery=self._delivered)
        for out in result.shadow:
            writer.produce(topics.shadow_predictions, key=out.key, value=out.value,
                           on_delivery=self._delivered)
        for out in result.dead_letters:
            writer.produce(topics.dead_letters, key=out.key, value=out.value,
                           on_delivery=self._delivered)
            self._metrics.dead_letters.labels(out.stage, out.kind).inc()
            event(log, "record.dead_lettered", logging.WARNING, source=out.source,
                  key=out.key, stage=out.stage, error_kind=out.kind, error=out.reason)
        writer.poll(0)
        m = self._metrics
        m.records_in.inc(len(records))
        m.batch_size.observe(len(records))
        for version, count in result.served_by.items():
            m.predictions_out.labels(version).inc(count)
        for version, count in result.shadowed_by.items():
            m.shadow_predictions_out.labels(version).inc(count)
        if routing is not None:
            m.keyed_predictions.labels("keyed").inc(result.keyed)
            m.keyed_predictions.labels("fleet").inc(result.fallbacks)
        if challenger is not None:
            self._evidence.scored(loaded.version, challenger.version, result.candidate_scored,
                                  result.candidate_failures, result.candidate_seconds)
            if result.candidate_failures:
                m.candidate_failures.labels(challenger.version).inc(result.candidate_failures)
        for r in result.keyed_rollouts:  # one series for every key's candidates
            self._evidence.scored(r.champion, r.candidate, r.scored, r.failures, r.seconds,
                                  key=r.key)
            if r.failures:
                m.candidate_failures.labels(KEYED).inc(r.failures)
        if result.predictions:
            m.inference_seconds.labels(loaded.version).observe(result.inference_seconds)
            if challenger is not None and result.candidate_scored:
                m.inference_seconds.labels(challenger.version).observe(result.candidate_seconds)
            for version, times_ms in result.request_times_ms.items():
                observe_many(m.end_to_end_seconds.labels(version),
                             np.maximum(0.0, now - times_ms / 1000))
            if self._s.evaluate and result.predicted is not None:
                self._log_changes(writer, self._evaluator.predicted(result.predicted))

    def _join(self, actuals: list[Message], writer: Any) -> None:
        now = self._now()
        changes = Changes()
        for msg in actuals:
            try:
                done = self._codec.decode(msg.value() or b"", TripCompleted)
            except ContractError as exc:  # an actual that does not decode gets its outcome too
                writer.produce(self._s.topics.dead_letters, key=dead_letter_key(msg.key()),
                               value=dead_letter(self._codec, msg, "decode", exc,
                                                 int(now * 1000)),
                               on_delivery=self._delivered)
                self._metrics.dead_letters.labels("decode", type(exc).__name__).inc()
                event(log, "record.dead_lettered", logging.WARNING,
                      source=f"{msg.topic()}[{msg.partition()}]@{msg.offset()}",
                      key=dead_letter_key(msg.key()),
                      stage="decode", error_kind=type(exc).__name__, error=str(exc)[:200])
                continue
            pickup = done.dropoff_datetime - timedelta(seconds=done.duration_seconds)
            changes.append(self._evaluator.actual(done.trip_id, done.duration_seconds,
                                                  msg.partition() or 0,
                                                  day_number(pickup.date())))
        self._log_changes(writer, changes)

    def _log_changes(self, writer: Any, changes: Changes) -> None:
        """The join state's changes, at their records' partitions: delivered with the batch,
        before its commit, so the changelog is never behind what the offsets say is done."""
        for partition, value in self._evaluator.changelog(changes):
            writer.produce(self._s.join_changelog, value=value, partition=partition,
                           on_delivery=self._delivered)

    def _restore(self, partitions: list[TopicPartition]) -> None:
        """Replay the changelog of the newly assigned actuals partitions into the join
        store: the waiting halves another worker kept for them come with the partitions.
        One reader for all of them: a reader per partition cost a second each."""
        horizon_ms = (self._now() - self._s.evaluation_horizon_s) * 1000
        assigned = [tp.partition for tp in partitions if tp.topic == self._s.topics.actuals]
        if not assigned:
            return
        restored = self._evaluator.restore(self._evaluator.writes(
            msg for msg in read_partitions(self._s.kafka, self._s.join_changelog, assigned)
            if msg.timestamp()[1] >= horizon_ms))
        event(log, "evaluation.restored", partitions=assigned, changes=restored)
