"""Turns model-table updates into swaps: loads the newest announced version of the served
model in a thread of its own, swaps it in when it is ready, and raises the alarm when a
version is refused (the previous one keeps serving)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from edml.contracts import ModelEvent, ModelMetadata
from edml.errors import EdmlError
from edml.logs import event, get_logger
from services.loader import ModelLoader
from services.metrics import Metrics
from services.model_slot import ModelSlot

__all__ = ["ModelSwapper"]

log = get_logger(__name__)


class ModelSwapper:
    def __init__(self, model_name: str, loader: ModelLoader, slot: ModelSlot, metrics: Metrics,
                 report: Callable[[ModelEvent], None], worker: str) -> None:
        self._name, self._loader, self._slot = model_name, loader, slot
        self._metrics, self._report, self._worker = metrics, report, worker
        self._wanted: ModelMetadata | None = None
        self._changed = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="model-swapper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._changed:
            self._stop = True
            self._changed.notify()
        self._thread.join(timeout=60)

    def offer(self, metadata: ModelMetadata) -> None:
        """Called for every model-table update; only the served name's latest counts."""
        if metadata.name != self._name:
            return
        with self._changed:
            self._wanted = metadata
            self._changed.notify()

    def _next(self) -> ModelMetadata | None:
        with self._changed:
            while not self._stop:
                wanted, self._wanted = self._wanted, None
                current = self._slot.current
                if wanted is not None and (current is None or wanted.version != current.version
                                           or wanted.checksum != current.metadata.checksum):
                    return wanted
                self._changed.wait()
        return None

    def _run(self) -> None:
        while (wanted := self._next()) is not None:
            self._load(wanted)

    def _load(self, metadata: ModelMetadata) -> None:
        event(log, "model.loading", model=metadata.name, version=metadata.version,
              uri=metadata.storage_uri)
        try:
            loaded = self._loader.load(metadata)
        except EdmlError as exc:
            self._refuse(metadata, exc)
            return
        previous = self._slot.swap(loaded)
        self._metrics.serving(metadata.name, metadata.version)
        self._metrics.model_load_seconds.observe(loaded.load_seconds)
        event(log, "model.swapped", model=metadata.name, version=metadata.version,
              previous=previous.version if previous else None,
              load_s=round(loaded.load_seconds, 3))
        self._tell(loaded.metadata, "loaded", load_seconds=loaded.load_seconds)

    def _refuse(self, metadata: ModelMetadata, exc: EdmlError) -> None:
        kind = type(exc).__name__
        self._metrics.model_load_failures.labels(metadata.version, kind).inc()
        current = self._slot.current
        event(log, "model.refused", logging.ERROR, model=metadata.name,
              version=metadata.version, error_kind=kind, error=str(exc),
              still_serving=current.version if current else None)
        self._tell(metadata, "load_failed", error_kind=kind, message=str(exc)[:1000])

    def _tell(self, metadata: ModelMetadata, kind: str, **fields: object) -> None:
        try:
            self._report(ModelEvent(model_name=metadata.name, model_version=metadata.version,
                                    kind=kind, worker=self._worker,
                                    at=datetime.now(UTC), **fields))  # type: ignore[arg-type]
        except EdmlError as exc:  # the alert channel failing must not stop the swapper
            event(log, "model_event.not_sent", logging.WARNING, error=str(exc))


