"""The scoring service: owns the model table, the follower, the swapper and the scoring
loop, started and stopped by the faust worker like any faust Service."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mode import Service

from edml.codec import Codec
from edml.contracts import ModelEvent, ModelKey, ModelMetadata
from edml.errors import EdmlError
from edml.kafka import flush_or_raise, producer
from edml.loader import ModelLoader
from edml.logs import event, get_logger
from edml.savedmodel import import_tensorflow_to_serve
from services.drift import DriftMonitor
from services.evaluation import LiveEvaluator
from services.evidence import EvidenceWindow
from services.keyed_models import KeyedModels
from services.loop import ScoringLoop
from services.metrics import Metrics
from services.model_follower import ModelFollower
from services.model_slot import ModelSlot
from services.model_table import ModelTable
from services.settings import ScoringSettings
from services.swapper import ModelSwapper

__all__ = ["ScoringService"]

log = get_logger(__name__)
_WATCH_S = 0.5  # seconds between checks that the worker threads are alive


class ScoringService(Service):
    def __init__(self, settings: ScoringSettings, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings, self.metrics = settings, metrics
        metrics.ready.set_function(lambda: float(self.is_ready))
        self.codec = Codec.from_settings(settings.registry)
        self.slot = ModelSlot()
        self._events = producer(settings.kafka)
        data = settings.data_dir
        # the table is this worker's own: single-object encoding, no registry to wait for
        self.table = ModelTable(data / "models.rocksdb", Codec())
        self.evidence = EvidenceWindow(settings.model_name, settings.worker_id)
        self.drift = DriftMonitor(settings.model_name, settings.worker_id)
        self.evaluator = LiveEvaluator(data / "joins.rocksdb", metrics,
                                       settings.evaluation_horizon_s, self.evidence, self.drift)
        loader = ModelLoader(settings.storage, data / "cache", settings.load_attempts,
                             settings.load_backoff_s)
        self.swapper = ModelSwapper(settings.model_name, loader, self.slot, metrics,
                                    self._report, settings.worker_id, self.table)
        self.keyed = KeyedModels(loader, metrics, settings.model_memory_mb << 20,
                                 self._tell_keyed)
        self.follower = ModelFollower(settings.kafka, settings.topics.models, self.table,
                                      self.codec, self._offer, self._caught_up,
                                      self.swapper.reject, self._withdrawn)
        self._begun = False
        self._announced = threading.Event()  # the caught-up table names a version to load
        self.scoring = ScoringLoop(settings, self.slot, self.follower.caught_up, self.codec,
                                   metrics, self.evaluator, self.swapper.retire, self.evidence,
                                   self.drift, announced=self._announced, keyed=self.keyed)

    def _offer(self, metadata: ModelMetadata) -> None:
        """A live model-table update: a keyed model of the served family to the keyed
        models, anything else to the swapper (which refuses another family's)."""
        if metadata.key is not None and metadata.name == self.settings.model_name:
            self.keyed.announce(metadata)
        else:
            self.swapper.offer(metadata)

    def _withdrawn(self, model: ModelKey) -> None:
        """A keyed model of the served family withdrawn: its key goes to the fleet model."""
        if model.name == self.settings.model_name and model.key is not None:
            self.keyed.withdraw(model.key)

    def _caught_up(self) -> None:
        """The model table holds the topic's final state: offer only its latest version
        (and each keyed model's: they load when their keys' trips come)."""
        for keyed in self.table.keyed(self.settings.model_name):
            self.keyed.announce(keyed)
        latest = self.table.get(self.settings.model_name)
        if latest is None:
            event(log, "model.none_announced", model=self.settings.model_name,
                  topic=self.settings.topics.models)
        else:
            self.swapper.offer(latest)
            self._announced.set()

    def _tell_keyed(self, metadata: ModelMetadata, kind: str,
                    fields: Mapping[str, object]) -> None:
        try:
            self._report(ModelEvent(
                model_name=metadata.name, model_version=metadata.version, kind=kind,
                worker=self.settings.worker_id, at=datetime.now(UTC), model_key=metadata.key,
                **fields))  # type: ignore[arg-type]
        except EdmlError as exc:  # the alert channel failing must not stop the loading
            event(log, "model_event.not_sent", logging.WARNING, error=str(exc))

    def _report(self, model_event: ModelEvent) -> None:
        self._events.produce(self.settings.topics.model_events,
                             key=model_event.model_name.encode(),
                             value=self.codec.encode(model_event))
        flush_or_raise(self._events, self.settings.kafka.request_timeout_s)

    @property
    def is_ready(self) -> bool:
        return self.slot.ready.is_set() and self.follower.caught_up.is_set() and \
            self.scoring.subscribed.is_set() and self.scoring.alive

    @property
    def is_alive(self) -> bool:
        return self.scoring.error is None and self.follower.error is None

    def begin(self) -> None:
        """Start the worker's threads (once): ``edml serve`` calls it before faust starts,
        so reading the model topic, loading the model and joining the scoring group run
        while faust joins its own group (seconds that would otherwise come one after the
        other before the first prediction)."""
        if self._begun:
            return
        self._begun = True
        # TensorFlow's import is most of a model's first load: under way at once, it is
        # done by the time the follower has read the model topic
        threading.Thread(target=import_tensorflow_to_serve, name="tensorflow-import",
                         daemon=True).start()
        self.swapper.start()
        self.keyed.start()
        # nothing is offered before the follower has caught up: a restarted worker's
        # table and cache make that first load fast
        self.follower.start()
        self.scoring.start()

    async def on_start(self) -> None:
        self.begin()

    @Service.task
    async def _watch(self) -> None:
        """A worker thread that failed unexpectedly stops the worker: Kubernetes restarts it
        and it resumes from the last committed offsets."""
        while not self.should_stop:
            failure = self.scoring.error or self.follower.error
            if failure is not None:
                event(log, "worker.crashing", logging.ERROR, error=repr(failure))
                await self.crash(failure)
                return
            await asyncio.sleep(_WATCH_S)

    async def on_stop(self) -> None:
        # The loop commits what it has processed before it closes its consumer.
        await asyncio.get_running_loop().run_in_executor(None, self.scoring.stop)
        self.follower.stop()
        self.swapper.stop()
        self.keyed.stop()
        self._events.flush(5)
        self.table.close()
        self.evaluator.close()
        event(log, "worker.stopped", model=self.settings.model_name)
