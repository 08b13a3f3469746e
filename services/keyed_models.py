"""The keyed models of the served family: what the model topic announces for each key, and
the loaded ones in an LRU bounded by a memory budget.

A batch asks for the models of the keys it holds (``serving``) and never waits: a key whose
model is loaded gets it, a key with an announced model that is not loaded is queued for this
class's own thread to load, and the fleet model answers its trips meanwhile. Loading past
the budget evicts the least recently used; an evicted model loads again when its key comes
back, if its key is asked for more often than the model it would evict (more hot keys than
fit would otherwise have each load evict a model the next batch asks for again). A keyed
model that cannot load leaves its key on the fleet model, raises the alert,
and is not tried again until a new version is announced (or, after a storage outage, after
a backoff).

A key's rollout candidate loads once its key's model is loaded, counts against the same
budget and leaves memory with it; a batch scores it beside its key's model. A promotion
makes the loaded candidate its key's model without a load; a candidate withdrawn or
replaced leaves at once, and one that cannot load or fails leaves its key's model serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from edml.contracts import ModelMetadata
from edml.errors import ArtifactError, EdmlError, StorageError, UnfitModel
from edml.loader import LoadedVersion, ModelLoader, same_artifact
from edml.logs import event, get_logger
from edml.savedmodel import collect_dropped_models
from services.batch import Candidate, Keyed
from services.metrics import Metrics

__all__ = ["KeyedModels", "footprint_bytes"]

log = get_logger(__name__)

# What a loaded SavedModel costs in memory, estimated from its artifact: TensorFlow's graph
# and function objects plus three times its files' bytes. Measured here: in a serving
# worker that loads and evicts, in batches of up to 20,000, 62 of bench/keyed.py's zone
# models (1.35 MB on disk each) took 1,213 MB of RSS over the single-model worker, 19.6 MB
# each (evicted models' memory, kernels cached per input shape and the allocator's
# fragments included); 10 MB each of it loaded in a process alone. Erring high keeps RSS
# under the budget.
_FIXED_BYTES = 14 << 20
_PER_FILE_BYTE = 3
RETRY_FIRST_WAIT_S, RETRY_MAX_WAIT_S = 2.0, 60.0  # a load refused for an outage, again
# How often a key is asked for: the batches it appeared in, halved every AGING_BATCHES so
# the counts follow a shift in traffic. Past the budget a key's model is admitted only if
# its key is asked for more often than the least recently used model's (TinyLFU's rule, as
# Caffeine applies it): bench/keyed.py, 263 zone models of which 82 fit, spent most of the
# worker's time loading models that evicted the ones the next batch asked for. Written
# here: the rule needs the loader's own queue and byte budget, which no cache library has.
AGING_BATCHES = 1000


def footprint_bytes(model_dir: Path) -> int:
    """The memory a loaded model is counted for against the budget."""
    files = sum(f.stat().st_size for f in model_dir.rglob("*") if f.is_file())
    return _FIXED_BYTES + _PER_FILE_BYTE * files


@dataclass(frozen=True)
class _Loaded:
    version: LoadedVersion
    bytes: int


class KeyedModels:
    def __init__(self, loader: ModelLoader, metrics: Metrics, budget_bytes: int,
                 tell: Callable[[ModelMetadata, str, Mapping[str, object]], None],
                 clock: Callable[[], float] = time.monotonic,
                 retry_waits_s: tuple[float, float] = (RETRY_FIRST_WAIT_S, RETRY_MAX_WAIT_S),
                 ) -> None:
        self._loader, self._metrics, self._budget = loader, metrics, budget_bytes
        self._tell, self._clock, self._retry_waits_s = tell, clock, retry_waits_s
        self._announced: dict[str, ModelMetadata] = {}
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()  # least recently used first
        self._candidates: dict[str, _Loaded] = {}  # a key's rollout candidate, loaded
        self._bytes = 0  # of the loaded and the candidates
        self._asked: dict[str, int] = {}  # per announced key: batches it appeared in, aged
        self._batches = 0
        self._dropped = False  # a model evicted or replaced since the last full collection
        self._refused: dict[str, ModelMetadata] = {}  # not tried again until re-announced
        self._refused_candidates: dict[str, ModelMetadata] = {}  # the same, of candidates
        # (key, a candidate?): (not before, last wait)
        self._retry: dict[tuple[str, bool], tuple[float, float]] = {}
        self._queue: deque[str] = deque()
        self._changed = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="keyed-models", daemon=True)
        metrics.keyed_budget_bytes.set(budget_bytes)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._changed:
            self._stop = True
            self._changed.notify()
        self._thread.join(timeout=60)

    def announce(self, metadata: ModelMetadata) -> None:
        """A keyed model's latest event: it answers its key from the next batch that finds
        it loaded; a loaded older version keeps answering until then."""
        key = metadata.key
        assert key is not None
        wanted = metadata.candidate
        with self._changed:
            self._announced[key] = metadata
            self._refused.pop(key, None)
            self._retry.pop((key, False), None)
            refused = self._refused_candidates.get(key)
            if refused is not None and (wanted is None or not same_artifact(refused, wanted)):
                del self._refused_candidates[key]
                self._retry.pop((key, True), None)
            loaded, candidate = self._loaded.get(key), self._candidates.get(key)
            if loaded is not None and not loaded.version.serves(metadata):
                if candidate is not None and candidate.version.serves(metadata):
                    self._promote(key)  # promoted: loaded and warm already
                    candidate = None
                else:
                    self._enqueue(key)  # loaded again now: its key is in use
            if candidate is not None and (wanted is None or not candidate.version.serves(
                    wanted)):  # withdrawn, or another candidate: that one loads
                self._bytes -= self._candidates.pop(key).bytes
                self._dropped = True
            if loaded is not None and self._missing_candidate(key) is not None:
                self._enqueue(key)
            self._show()
        event(log, "keyed_model.announced", model=metadata.label, version=metadata.version,
              candidate=wanted.version if wanted else None,
              mode=metadata.rollout.mode if metadata.rollout else None)

    def withdraw(self, key: str) -> None:
        """The key's model is withdrawn: its trips go to the fleet model from the next
        batch, and its models leave memory."""
        with self._changed:
            self._announced.pop(key, None)
            self._asked.pop(key, None)
            self._refused.pop(key, None)
            self._refused_candidates.pop(key, None)
            self._retry.pop((key, False), None)
            self._retry.pop((key, True), None)
            loaded = self._loaded.pop(key, None)
            if loaded is not None:
                self._bytes -= loaded.bytes
                self._drop_candidate(key)
                self._dropped = True
            self._show()
        event(log, "keyed_model.withdrawn", key=key, was_loaded=loaded is not None)

    def _promote(self, key: str) -> None:
        """The key's candidate replaces its model (the caller holds the lock)."""
        self._bytes -= self._loaded[key].bytes
        self._loaded[key] = self._candidates.pop(key)
        self._dropped = True

    def _missing_candidate(self, key: str) -> ModelMetadata | None:
        """The key's rollout candidate, if it is wanted and neither loaded nor refused."""
        wanted = self._announced[key].candidate
        if wanted is None or key in self._candidates or key in self._refused_candidates:
            return None
        return wanted

    def serving(self, keys: Iterable[str]) -> dict[str, Keyed]:
        """For one batch: the loaded model of each of ``keys`` that has one. The announced
        ones not loaded are queued for loading; their trips go to the fleet model now."""
        found: dict[str, Keyed] = {}
        with self._changed:
            self._age()
            now = None
            for key in keys:
                if key in self._announced:
                    self._asked[key] = self._asked.get(key, 0) + 1
                loaded = self._loaded.get(key)
                if loaded is not None:
                    self._loaded.move_to_end(key)
                    found[key] = Keyed(loaded.version.model, loaded.version.version,
                                       self._candidate(key), loaded.version.profile)
                    wants = self._missing_candidate(key) is not None
                    retry = self._retry.get((key, True))
                elif key in self._announced and key not in self._refused:
                    wants, retry = True, self._retry.get((key, False))
                else:
                    continue
                if wants and retry is not None:
                    now = self._clock() if now is None else now
                    wants = now >= retry[0]
                if wants:
                    self._enqueue(key)
        return found

    def _candidate(self, key: str) -> Candidate | None:
        """The key's loaded rollout candidate, in the mode its latest state gives."""
        loaded = self._candidates.get(key)
        rollout = self._announced[key].rollout
        if loaded is None or rollout is None:
            return None
        return Candidate(loaded.version.model, loaded.version.version, rollout.mode,
                         rollout.weight)

    def _age(self) -> None:
        self._batches += 1
        if self._batches % AGING_BATCHES == 0:
            self._asked = {key: n // 2 for key, n in self._asked.items() if n > 1}

    def unfit(self, key: str, exc: UnfitModel, candidate: bool = False) -> None:
        """A batch found ``key``'s model (or its rollout's ``candidate``) failing on its
        trips and on the smoke requests: out, for good (its key goes to the fleet model;
        a candidate's, to its key's model)."""
        with self._changed:
            loaded = (self._candidates if candidate else self._loaded).pop(key, None)
            if loaded is None:
                return
            self._bytes -= loaded.bytes
            if candidate:
                self._refused_candidates[key] = loaded.version.metadata
            else:
                self._refused[key] = loaded.version.metadata
                self._drop_candidate(key)
            self._dropped = True
            self._show()
        metadata = loaded.version.metadata
        event(log, "keyed_model.retired", logging.ERROR, model=metadata.label,
              version=metadata.version, error=str(exc))
        self._tell(metadata, "retired", {"error_kind": type(exc).__name__,
                                         "message": str(exc)[:1000]})

    def _enqueue(self, key: str) -> None:
        if key not in self._queue:
            self._queue.append(key)
            self._changed.notify()

    def _drop_candidate(self, key: str) -> None:
        """Its key's model left memory: its candidate too (the caller holds the lock)."""
        candidate = self._candidates.pop(key, None)
        if candidate is not None:
            self._bytes -= candidate.bytes

    def _next(self) -> tuple[ModelMetadata, bool] | None:
        """The next version to load, and whether it is a key's rollout candidate."""
        with self._changed:
            while not self._stop:
                while self._queue:
                    key = self._queue.popleft()
                    wanted = self._announced.get(key)
                    if wanted is None:
                        continue  # withdrawn since it was queued
                    loaded = self._loaded.get(key)
                    if loaded is not None and not loaded.version.serves(wanted):
                        return wanted.version_only(), False  # a new version takes its place
                    if loaded is None:
                        if self._admits(key):
                            return wanted.version_only(), False
                        self._metrics.keyed_loads.labels("not_admitted").inc()
                    elif (candidate := self._missing_candidate(key)) is not None:
                        return candidate, True
                self._changed.wait()
        return None

    def _admits(self, key: str) -> bool:
        """Within the budget, any key; past it, one asked for more often than the model
        it would evict (the caller holds the lock)."""
        if not self._loaded:
            return True
        if self._bytes + self._bytes // len(self._loaded) <= self._budget:
            return True
        victim = next(iter(self._loaded))
        return self._asked.get(key, 0) > self._asked.get(victim, 0)

    def _run(self) -> None:
        while (wanted := self._next()) is not None:
            self._load(*wanted)
            if self._idle_after_dropping():
                # while nothing waits to load: the scoring thread waits out this collection
                collect_dropped_models()

    def _idle_after_dropping(self) -> bool:
        with self._changed:
            if self._queue or not self._dropped:
                return False
            self._dropped = False
            return True

    def _load(self, metadata: ModelMetadata, candidate: bool) -> None:
        key = metadata.key
        assert key is not None
        try:
            loaded = self._loader.load(metadata)
        except EdmlError as exc:
            self._failed(key, metadata, exc, candidate)
            return
        size = footprint_bytes(loaded.model.path)
        with self._changed:
            state = self._announced.get(key)
            if state is None:
                return  # withdrawn meanwhile
            if candidate:
                if state.candidate is None or not same_artifact(state.candidate, metadata) \
                        or key not in self._loaded:
                    return  # withdrawn or replaced meanwhile, or its key's model evicted
                self._candidates[key] = _Loaded(loaded, size)
            else:
                if not same_artifact(state, metadata):
                    return  # a newer version came meanwhile: it is queued
                replaced = self._loaded.get(key)
                if replaced is not None:
                    self._bytes -= replaced.bytes
                    self._dropped = True
                self._loaded[key] = _Loaded(loaded, size)
                if self._missing_candidate(key) is not None:
                    self._enqueue(key)  # its rollout's candidate next
            self._bytes += size
            self._loaded.move_to_end(key)
            self._retry.pop((key, candidate), None)
            evicted = self._evict(keep=key)
            self._show()
        self._metrics.keyed_loads.labels("loaded").inc()
        self._metrics.model_load_seconds.observe(loaded.load_seconds)
        event(log, "keyed_model.loaded", model=metadata.label, version=metadata.version,
              role="candidate" if candidate else "champion",
              load_s=round(loaded.load_seconds, 3), mb=round(size / 2**20, 1),
              evicted=evicted or None)
        self._tell(metadata, "loaded", {"load_seconds": loaded.load_seconds})

    def _evict(self, keep: str) -> list[str]:
        """Least recently used first, until the loaded fit the budget (the one just loaded
        stays, even alone over it: its key asked for it)."""
        evicted = []
        while self._bytes > self._budget:
            key = next(iter(self._loaded))
            if key == keep:
                break
            self._bytes -= self._loaded.pop(key).bytes
            self._drop_candidate(key)
            evicted.append(key)
            self._dropped = True
        self._metrics.keyed_evictions.inc(len(evicted))
        return evicted

    def _failed(self, key: str, metadata: ModelMetadata, exc: EdmlError,
                candidate: bool) -> None:
        """Storage away: try again after a backoff, when the key comes back. The artifact
        wrong: refused until a new version of the key (or candidate) is announced."""
        outage = isinstance(exc, StorageError) and not isinstance(exc, ArtifactError)
        with self._changed:
            if key not in self._announced:
                return  # withdrawn meanwhile: nothing to retry or refuse
            if outage:
                first, most = self._retry_waits_s
                wait = min(max(2 * self._retry.get((key, candidate), (0.0, 0.0))[1], first),
                           most)
                self._retry[(key, candidate)] = (self._clock() + wait, wait)
            else:
                (self._refused_candidates if candidate else self._refused)[key] = metadata
            self._show()
        kind = type(exc).__name__
        self._metrics.keyed_loads.labels("failed").inc()
        event(log, "keyed_model.refused", logging.ERROR, model=metadata.label,
              version=metadata.version, error_kind=kind, error=str(exc),
              retry=outage, now_serving="its key's model" if candidate else "the fleet model")
        self._tell(metadata, "load_failed", {"error_kind": kind, "message": str(exc)[:1000]})

    def _show(self) -> None:
        """The gauges (caller holds the lock): none is labelled by key, so a family of
        thousands of keys costs the metrics nothing more than one of three."""
        m = self._metrics
        m.keyed_loaded.set(len(self._loaded) + len(self._candidates))
        m.keyed_bytes.set(self._bytes)
        m.keyed_refused.set(len(self._refused) + len(self._refused_candidates)
                            + len(self._retry))
