"""``edml retrain``: follows the model-events topic; each ``retrain_requested`` event the
controller writes becomes a new version, trained on the window it proposes, published as
a shadow candidate beside the champion with the request's id in its provenance
(``ModelMetadata.retrain_request``). The rollout controller then judges it on paired
evidence like any candidate. A keyed model's request (``model_key``) is trained on its
key's trips of the window alone and published as that key's candidate.

At-least-once, as the workers: a request's offset is committed after it is answered (or
found answered already: a retried request is not trained twice). A request that cannot be
answered for its own sake (no trips in its window, a model that fails its checks) is
logged and passed over; an outage (broker, storage) stops the process, and the restarted
one takes the request again."""

from __future__ import annotations

import dataclasses
import logging
import threading
from datetime import date

import keras
import pandas as pd

from edml.codec import Codec
from edml.contracts import SHADOW, ModelEvent, ModelMetadata
from edml.errors import BrokerError, DataError, DecodeError, ModelError
from edml.kafka import consumer
from edml.logs import event, get_logger
from edml.routing import rows_of_key, source_column
from edml.storage import check_artifact_location, download_verified, open_store
from model_publisher.publish import BacktestGate, Published, current_state, publish
from model_publisher.settings import PublisherSettings
from retrainer.dataset import trips_from_topics
from retrainer.settings import RetrainSettings
from trainer.data import CleanReport, TripFrame, clean, load_trips, parse_months, resolve_sources
from trainer.export import load_trainable
from trainer.fit import split_by_days
from trainer.pipeline import train_on
from trainer.settings import TrainSettings

__all__ = ["follow", "retrain"]

log = get_logger(__name__)
_TRAINING_MAY_TAKE_MS = 2 * 3600 * 1000  # the consumer stays in its group meanwhile


def _publisher(settings: RetrainSettings) -> PublisherSettings:
    return PublisherSettings(kafka=settings.kafka, topics=settings.topics,
                             storage=settings.storage, registry=settings.registry,
                             git_commit=settings.git_commit)


def _answered(state: ModelMetadata, request_id: str) -> str | None:
    """The version that carries ``request_id``, if the state holds one."""
    for version in (state, state.candidate, state.previous):
        if version is not None and version.retrain_request == request_id:
            return version.version
    return None


def _trips(settings: RetrainSettings, start: date, end: date) -> tuple[TripFrame, CleanReport]:
    if not settings.data:
        return trips_from_topics(settings.kafka, settings.topics,
                                 Codec.from_settings(settings.registry), start, end)
    months = list(pd.period_range(start, end, freq="M"))
    raw = load_trips(resolve_sources(list(settings.data), months), settings.work_dir / "tlc")
    trips, report = clean(raw, parse_months(f"{months[0]}..{months[-1]}"))
    day = trips["pickup_datetime"].dt.date
    return trips[(day >= start) & (day <= end)].reset_index(drop=True), report


def _of_key(trips: TripFrame, cleaning: CleanReport, state: ModelMetadata, key: str
            ) -> tuple[TripFrame, CleanReport]:
    """The trips the family's routing field gives ``key`` (what its model answers); the
    others are counted as dropped, so the model's report says what it was trained on."""
    field = state.routed_by
    if field is None:
        raise ModelError(f"{state.label}: its event names no routing field")
    mine = rows_of_key(field, trips[source_column(field)].to_numpy(), key)
    report = dataclasses.replace(cleaning, dropped={
        **cleaning.dropped, f"{field} is not {key}": int((~mine).sum())})
    return trips[mine].reset_index(drop=True), report


def _trainable(settings: RetrainSettings, champion: ModelMetadata) -> keras.Model | None:
    """The champion's own Keras model, fetched and verified like the workers fetch it, to
    warm-start from; None for an artifact that does not keep one."""
    check_artifact_location(champion.storage_uri, champion.name, champion.version,
                            settings.storage.roots, champion.key)
    target = settings.work_dir / "champions" / champion.label / champion.version
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        download_verified(open_store(settings.storage, champion.storage_uri),
                          champion.storage_uri, champion.checksum, target)
    model = load_trainable(target)
    if model is None:
        event(log, "retrain.no_trainable_champion", logging.WARNING, model=champion.label,
              version=champion.version)
    return model


def retrain(settings: RetrainSettings, request: ModelEvent) -> Published | None:
    """Answer one request: train on its window, publish the result as a shadow candidate.
    None when there is nothing to do (answered already, no champion, a rollout under way)."""
    r = request.retrain
    if r is None:
        raise ValueError(f"{request.kind} event has no retrain request")
    publisher, name, request_id = _publisher(settings), request.model_name, r.request_id
    key = request.model_key
    state = current_state(publisher, name, key)
    if state is None:
        event(log, "retrain.no_champion", logging.WARNING, model=name, request=request_id)
        return None
    if (version := _answered(state, request_id)) is not None:
        event(log, "retrain.already_answered", model=name, request=request_id,
              version=version)
        return None
    if state.rollout is not None:  # one candidate at a time; the controller asks again
        event(log, "retrain.rollout_under_way", logging.WARNING, model=name,
              request=request_id, candidate=state.rollout.candidate.version)
        return None
    trips, cleaning = _trips(settings, r.train_start, r.train_end)
    if key is not None:
        trips, cleaning = _of_key(trips, cleaning, state, key)
    champion = _trainable(settings, state)
    event(log, "retrain.training", model=state.label, request=request_id, trips=len(trips),
          window=f"{r.train_start}..{r.train_end}", source="files" if settings.data
          else "topics", warm_start_from=state.version if champion is not None else None)
    split = split_by_days(trips, settings.validation_days)
    outcome = train_on(split, TrainSettings(out=settings.work_dir / r.request_id,
                                            epochs=settings.epochs, quick=settings.quick,
                                            batch_size=settings.batch_size), cleaning,
                       start_from=champion)
    # the days it was validated on, not fitted on: a candidate clearly worse than the
    # champion there is not worth a rollout (ModelError: the request is passed over); a
    # keyed candidate's validation days are its key's trips, judged against its key's model
    gate = BacktestGate(split.valid, settings.validation_days, "refuse",
                        settings.work_dir / "score-cache") if settings.backtest else None
    published = publish(outcome.model_dir, name, publisher, mode=SHADOW,
                        retrain_request=request_id, gate=gate, key=key)
    candidate = published.metadata.candidate
    event(log, "retrain.published", model=state.label, request=request_id, role=SHADOW,
          version=candidate.version if candidate is not None else None)
    return published


def follow(settings: RetrainSettings, stop: threading.Event) -> None:
    """Answer every retrain request on the model-events topic, in order, until ``stop``."""
    codec = Codec.from_settings(settings.registry)
    reader = consumer(settings.kafka, settings.group_id, **{
        "enable.partition.eof": False, "max.poll.interval.ms": _TRAINING_MAY_TAKE_MS})
    reader.subscribe([settings.topics.model_events])
    event(log, "retrain.following", topic=settings.topics.model_events,
          group=settings.group_id)
    try:
        while not stop.is_set():
            for msg in reader.consume(10, 0.5):
                err = msg.error()
                if err is not None:
                    if err.fatal() or not err.retriable():
                        raise BrokerError(f"reading {settings.topics.model_events}: "
                                          f"{err.str()}")
                    continue
                try:
                    model_event = codec.decode(msg.value() or b"", ModelEvent)
                except DecodeError as exc:
                    event(log, "retrain.undecodable", logging.WARNING, offset=msg.offset(),
                          error=str(exc))
                    model_event = None
                if model_event is not None and model_event.retrain is not None:
                    try:
                        retrain(settings, model_event)
                    except (DataError, ModelError) as exc:  # the request's own: passed over
                        event(log, "retrain.failed", logging.ERROR,
                              model=model_event.model_name,
                              request=model_event.retrain.request_id, error=str(exc))
                reader.commit(message=msg, asynchronous=False)
    finally:
        reader.close()
