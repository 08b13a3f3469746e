"""Turns model-table updates into swaps: loads the newest announced serving state of the
served model (its champion, and a rollout's candidate) in a thread of its own, puts each in
the slot when it is ready, and raises the alarm when a version is refused (what served
keeps serving) or retired by the scoring loop as unfit (a champion's predecessor serves
again, a candidate just leaves; a retired version stays out after a restart). A promoted
candidate is already loaded: promotion is a swap, not a load."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from edml.contracts import ModelEvent, ModelMetadata
from edml.errors import ArtifactError, EdmlError, StorageError, UnfitModel
from edml.loader import LoadedVersion, ModelLoader, same_artifact
from edml.logs import event, get_logger
from services.metrics import Metrics
from services.model_slot import ModelSlot
from services.model_table import ModelTable

__all__ = ["ModelSwapper"]

log = get_logger(__name__)
RETRY_FIRST_WAIT_S = 2.0  # seconds before a version refused for an outage is tried again
RETRY_MAX_WAIT_S = 60.0  # the backoff doubles up to this


class ModelSwapper:
    def __init__(self, model_name: str, loader: ModelLoader, slot: ModelSlot, metrics: Metrics,
                 report: Callable[[ModelEvent], None], worker: str,
                 table: ModelTable | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 retry_waits_s: tuple[float, float] = (RETRY_FIRST_WAIT_S, RETRY_MAX_WAIT_S),
                 ) -> None:
        self._name, self._loader, self._slot = model_name, loader, slot
        self._metrics, self._report, self._worker = metrics, report, worker
        self._table = table  # where retired versions and the fallback are remembered
        self._clock = clock
        # a version refused for an outage, and when to try it again
        self._retry: tuple[ModelMetadata, float] | None = None
        self._retry_wait_s, self._retry_waits_s = 0.0, retry_waits_s
        self._alerted: str | None = None  # the version whose outage has been alerted on
        self._wanted: ModelMetadata | None = None
        self._state: ModelMetadata | None = None  # the state being applied
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
        """Called for every live model-table update; only the served name's latest counts."""
        if metadata.name != self._name:
            self.reject(-1, f"announces model {metadata.name} {metadata.version}; this worker "
                        f"serves {self._name}", metadata.version)
            return
        with self._changed:
            self._wanted = metadata
            self._changed.notify()

    def _next(self) -> ModelMetadata | None:
        with self._changed:
            while not self._stop:
                wanted, self._wanted = self._wanted, None
                if wanted is not None:
                    self._retry = None  # a newer event supersedes a pending retry
                elif self._retry is not None and self._clock() >= self._retry[1]:
                    wanted, self._retry = self._retry[0], None
                if wanted is not None and not self._settled(wanted):
                    return wanted
                self._changed.wait(None if self._retry is None
                                   else max(0.0, self._retry[1] - self._clock()))
        return None

    def _settled(self, state: ModelMetadata) -> bool:
        """The slot serves ``state`` already: its champion, and its candidate in its mode."""
        lineup = self._slot.lineup()
        if lineup is None or not same_artifact(lineup.champion.metadata, state):
            return False
        rollout = state.rollout
        if rollout is None or lineup.candidate is None:
            return rollout is None and lineup.candidate is None
        return same_artifact(lineup.candidate.metadata, rollout.candidate) and \
            (lineup.mode, lineup.weight) == (rollout.mode, rollout.weight)

    def _run(self) -> None:
        while (wanted := self._next()) is not None:
            self._apply(wanted)

    def _apply(self, state: ModelMetadata) -> None:
        self._state = state
        champion = state.version_only()
        current, candidate = self._slot.current, self._slot.candidate
        if current is None or not same_artifact(current.metadata, champion):
            if candidate is not None and same_artifact(candidate.metadata, champion):
                self._serve(candidate)  # promoted: loaded and warm already
                self._metrics.candidate(None)
            else:
                self._load(champion)
        if self._slot.current is not None:  # a candidate is only ever scored beside one
            self._apply_candidate(state)

    def _apply_candidate(self, state: ModelMetadata) -> None:
        rollout, have = state.rollout, self._slot.candidate
        if rollout is None:
            if have is not None:
                self._slot.set_candidate(None)
                self._metrics.candidate(None)
                event(log, "candidate.withdrawn", model=state.name, version=have.version,
                      champion=state.version)
            return
        wanted = rollout.candidate
        if have is not None and same_artifact(have.metadata, wanted):
            self._slot.set_candidate(have, rollout.mode, rollout.weight)
            self._metrics.candidate(have.metadata, rollout.mode, rollout.weight)
            return
        try:
            if self._table is not None and self._table.is_retired(wanted):
                raise UnfitModel("taken out of service earlier on this worker: it failed on "
                                 "records and on the smoke requests")
            event(log, "candidate.loading", model=wanted.name, version=wanted.version,
                  mode=rollout.mode, weight=rollout.weight, uri=wanted.storage_uri)
            loaded = self._loader.load(wanted, on_retry=self._fetch_failed)
        except EdmlError as exc:
            self._slot.set_candidate(None)  # the champion serves alone meanwhile
            self._metrics.candidate(None)
            self._failed(wanted, exc)
            return
        self._slot.set_candidate(loaded, rollout.mode, rollout.weight)
        self._metrics.candidate(loaded.metadata, rollout.mode, rollout.weight)
        self._metrics.loaded(loaded.load_seconds)
        event(log, "candidate.scoring", model=wanted.name, version=wanted.version,
              mode=rollout.mode, weight=rollout.weight, champion=state.version,
              load_s=round(loaded.load_seconds, 3))
        self._tell(wanted, "loaded", load_seconds=loaded.load_seconds)

    def _failed(self, metadata: ModelMetadata, exc: EdmlError) -> None:
        """A version was not loaded: retry it if storage was away (one alert per outage),
        refuse it for good if the artifact is wrong."""
        outage = isinstance(exc, StorageError) and not isinstance(exc, ArtifactError)
        if outage:
            self._retry_later(metadata)
        if not (outage and self._alerted == metadata.version):  # one alert per outage
            self._refuse(metadata, exc)

    def _load(self, metadata: ModelMetadata, recovering: bool = False) -> None:
        try:
            if self._table is not None and self._table.is_retired(metadata):
                raise UnfitModel("taken out of service earlier on this worker: it failed on "
                                 "records and on the smoke requests")
            event(log, "model.loading", model=metadata.name, version=metadata.version,
                  uri=metadata.storage_uri)
            loaded = self._loader.load(metadata, on_retry=self._fetch_failed)
        except EdmlError as exc:
            self._failed(metadata, exc)
            if self._slot.current is None and not recovering:
                self._recover(metadata)
            return
        self._serve(loaded)

    def _serve(self, loaded: LoadedVersion) -> None:
        """``loaded`` becomes the champion."""
        metadata = loaded.metadata
        self._alerted, self._retry_wait_s = None, 0.0
        previous = self._slot.swap(loaded)
        if self._table is not None:
            if previous is not None and previous.version != loaded.version:
                self._table.set_fallback(previous.metadata)
            self._table.set_serving(loaded.metadata)
        self._metrics.serving(metadata.name, metadata)
        self._metrics.loaded(loaded.load_seconds)
        event(log, "model.swapped", model=metadata.name, version=metadata.version,
              previous=previous.version if previous else None,
              load_s=round(loaded.load_seconds, 3))
        self._tell(loaded.metadata, "loaded", load_seconds=loaded.load_seconds)

    def _fetch_failed(self, metadata: ModelMetadata, attempt: int, exc: StorageError,
                      wait_s: float) -> None:
        """The first failed fetch of a version raises the alarm while retrying goes on:
        an operator learns of a storage outage in seconds, not after every retry."""
        if attempt == 1 and self._alerted != metadata.version:
            self._alerted = metadata.version
            self._refuse(metadata, StorageError(f"{exc} (attempt 1 failed; retrying)"))

    def _retry_later(self, metadata: ModelMetadata) -> None:
        """Storage was away, not the artifact wrong: try the version again, backing off up
        to ``RETRY_MAX_WAIT_S``, until it loads or a newer version is announced."""
        first, most = self._retry_waits_s
        self._retry_wait_s = min(max(2 * self._retry_wait_s, first), most)
        event(log, "model.retry_scheduled", logging.WARNING, model=metadata.name,
              version=metadata.version, in_s=self._retry_wait_s)
        with self._changed:  # the whole state is applied again: whatever is missing loads
            self._retry = (self._state or metadata, self._clock() + self._retry_wait_s)

    def _recover(self, refused: ModelMetadata) -> None:
        """Nothing serves and the latest version was refused (a restart whose latest event
        is bad): serve what this worker served before, as it did before the restart."""
        if self._table is None:
            return
        for candidate in (self._table.serving(refused.name), self._table.fallback(refused.name)):
            if candidate is not None and candidate.version != refused.version:
                event(log, "model.recovering", model=refused.name, version=candidate.version,
                      refused=refused.version)
                self._load(candidate, recovering=True)
                if self._slot.current is not None:
                    return

    def reject(self, offset: int, why: str, version: str = "") -> None:
        """A model-topic event this worker cannot act on: the alert, nothing else changes."""
        self._metrics.refused(version, "RejectedEvent")
        self._report_safely(ModelEvent(
            model_name=self._name, model_version=version, kind="rejected",
            worker=self._worker, at=datetime.now(UTC), error_kind="RejectedEvent",
            message=(f"model topic offset {offset}: " if offset >= 0 else "") + why[:900]))

    def retire(self, unfit: LoadedVersion, exc: UnfitModel) -> LoadedVersion | None:
        """The scoring loop found ``unfit`` failing on a batch and on the smoke requests:
        take it out, for good, and return what serves now (the version it replaced, or
        None: then records wait in Kafka for the next version)."""
        metadata = unfit.metadata
        now = self._slot.retire(unfit.version)
        if self._table is not None:
            self._table.retire(metadata)
            if now is not None:
                self._table.set_serving(now.metadata)
        self._metrics.refused(metadata.version, type(exc).__name__)
        self._metrics.serving(metadata.name, now.metadata if now else None)
        event(log, "model.retired", logging.ERROR, model=metadata.name,
              version=metadata.version, error=str(exc), now_serving=now.version if now else None)
        self._tell(metadata, "retired", error_kind=type(exc).__name__, message=str(exc)[:1000])
        return now

    def _refuse(self, metadata: ModelMetadata, exc: EdmlError) -> None:
        kind = type(exc).__name__
        self._metrics.refused(metadata.version, kind)
        current = self._slot.current
        event(log, "model.refused", logging.ERROR, model=metadata.name,
              version=metadata.version, error_kind=kind, error=str(exc),
              still_serving=current.version if current else None)
        self._tell(metadata, "load_failed", error_kind=kind, message=str(exc)[:1000])

    def _tell(self, metadata: ModelMetadata, kind: str, **fields: object) -> None:
        self._report_safely(ModelEvent(
            model_name=metadata.name, model_version=metadata.version, kind=kind,
            worker=self._worker, at=datetime.now(UTC), **fields))  # type: ignore[arg-type]

    def _report_safely(self, model_event: ModelEvent) -> None:
        try:
            self._report(model_event)
        except EdmlError as exc:  # the alert channel failing must not stop the swapper
            event(log, "model_event.not_sent", logging.WARNING, error=str(exc))

