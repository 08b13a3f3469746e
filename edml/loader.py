"""Loading a model version: fetch the artifact into the local cache, verify its checksum,
load it, check its signature against the records, warm it up. The scoring worker does it
off its hot path before a swap; batch scoring does it once per version and process, so a
version scores history exactly as it scores the stream.

Cached artifacts are kept under ``<data dir>/cache/NAME/VERSION`` and reused after a
restart (verified again, so a damaged cache is fetched anew).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edml.artifacts import checksum_of, model_folder, validate_name
from edml.contracts import ModelMetadata
from edml.errors import ArtifactError, ModelError, StorageError
from edml.logs import event, get_logger
from edml.profile import Profile
from edml.savedmodel import LoadedModel, load_savedmodel, smoke_test
from edml.settings import StorageSettings
from edml.signature import check_signature
from edml.storage import check_artifact_location, download_verified, open_store

__all__ = ["LoadedVersion", "ModelLoader", "OnRetry", "same_artifact"]

log = get_logger(__name__)
# (the version, the failed attempt's number, its error, the seconds before the next)
OnRetry = Callable[[ModelMetadata, int, StorageError, float], None]


@dataclass(frozen=True)
class LoadedVersion:
    metadata: ModelMetadata
    model: LoadedModel
    load_seconds: float
    profile: Profile | None = None  # the reference the drift monitors bin traffic by

    @property
    def version(self) -> str:
        return self.metadata.version

    def serves(self, wanted: ModelMetadata) -> bool:
        """This is the artifact ``wanted`` names (same version, same checksum)."""
        return same_artifact(self.metadata, wanted)


def same_artifact(a: ModelMetadata, b: ModelMetadata) -> bool:
    return (a.version, a.checksum) == (b.version, b.checksum)


class ModelLoader:
    def __init__(self, storage: StorageSettings, cache_dir: Path, attempts: int = 4,
                 backoff_s: float = 0.5, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._storage, self._cache = storage, cache_dir
        self._attempts, self._backoff_s = attempts, backoff_s
        self._sleep, self._clock = sleep, clock

    def load(self, metadata: ModelMetadata,
             on_retry: OnRetry = lambda metadata, attempt, exc, wait_s: None) -> LoadedVersion:
        """Everything that can refuse a version runs before anything serves it. A fetch that
        fails for storage (not for the artifact) is retried; ``on_retry`` hears of each
        failed attempt before the wait."""
        started = self._clock()
        # refuse before downloading anything
        check_artifact_location(metadata.storage_uri, metadata.name, metadata.version,
                                self._storage.roots, metadata.key)
        check_signature(metadata.signature)
        local = self._fetch(metadata, on_retry)
        model = load_savedmodel(local, metadata.signature.name)
        if set(model.signature.inputs) != set(metadata.signature.inputs) or \
                model.signature.output != metadata.signature.output:
            raise ModelError(f"{metadata.name} {metadata.version}: the stored model's signature "
                             f"{model.signature} differs from its event's {metadata.signature}")
        self._warm_up(metadata, model)
        profile = Profile.read(local) if metadata.profile is not None else None
        if metadata.profile is not None and profile is None:
            raise ArtifactError(f"{metadata.storage_uri}: the event names the profile "
                                f"{metadata.profile}, the artifact has none")
        return LoadedVersion(metadata, model, self._clock() - started, profile)

    def _fetch(self, metadata: ModelMetadata, on_retry: OnRetry) -> Path:
        target = (self._cache / model_folder(metadata.name, metadata.key)
                  / validate_name("version", metadata.version))
        if target.is_dir():
            if checksum_of(target) == metadata.checksum:
                event(log, "model.cache_hit", model=metadata.label, version=metadata.version)
                return target
            shutil.rmtree(target)  # damaged or from another artifact: fetch anew
        target.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, self._attempts + 1):
            try:
                # retries=False: these attempts are the one retry layer, so a failure is
                # seen (and alerted on) after one storage call, not after the client's own
                download_verified(open_store(self._storage, metadata.storage_uri,
                                             retries=False),
                                  metadata.storage_uri, metadata.checksum, target)
                return target
            except ArtifactError:
                raise  # missing or corrupt: retrying does not change it
            except StorageError as exc:
                if attempt == self._attempts:
                    raise
                wait = self._backoff_s * 2 ** (attempt - 1)
                event(log, "model.fetch_retry", logging.WARNING, model=metadata.label,
                      version=metadata.version, attempt=attempt, wait_s=wait, error=str(exc))
                on_retry(metadata, attempt, exc, wait)
                self._sleep(wait)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _warm_up(self, metadata: ModelMetadata, model: LoadedModel) -> None:
        """The publisher's smoke test again: traces the graph now, not on the first batch,
        and proves one plausible duration per request (count, shape and range)."""
        smoke_test(model, f"{metadata.name} {metadata.version}")
