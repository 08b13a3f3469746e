"""The keyed models in memory: loaded on demand off the batch's path, least recently used
evicted past the budget, and a model that cannot load leaves its key on the fleet model."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edml.contracts import CANARY, SHADOW, ModelMetadata, Rollout, RolloutPolicy
from edml.errors import ArtifactError, StorageError, UnfitModel
from edml.loader import LoadedVersion
from edml.samples import sample_events
from services.keyed_models import AGING_BATCHES, KeyedModels, footprint_bytes
from services.metrics import Metrics

BASE = next(v for v, _ in sample_events() if isinstance(v, ModelMetadata))
MODEL_FILE_BYTES = 1 << 20  # each fake model's artifact


def _keyed(key: str, version: str = "k1") -> ModelMetadata:
    return dataclasses.replace(BASE, name="trips", version=version, key=key,
                               routed_by="pickup_zone_id")


@dataclasses.dataclass
class _Model:
    path: Path


class FakeLoader:
    """Loads a model of ``MODEL_FILE_BYTES`` per key; refuses ``broken`` versions, fails
    ``outages`` loads for storage first."""

    def __init__(self, root: Path, broken: set[str] = frozenset(), outages: int = 0) -> None:  # type: ignore[assignment]
        self.root, self.broken, self.outages = root, broken, outages
        self.loads: list[tuple[str | None, str]] = []

    def load(self, metadata: ModelMetadata, on_retry: Any = None) -> LoadedVersion:
        if metadata.version in self.broken:
            raise ArtifactError(f"{metadata.version}: checksum mismatch")
        if self.outages:
            self.outages -= 1
            raise StorageError("connection refused")
        folder = self.root / f"{metadata.key}-{metadata.version}"
        folder.mkdir(exist_ok=True)
        (folder / "variables").write_bytes(b"\0" * MODEL_FILE_BYTES)
        self.loads.append((metadata.key, metadata.version))
        return LoadedVersion(metadata, _Model(folder), 0.01)  # type: ignore[arg-type]


@pytest.fixture
def told() -> list[tuple[str | None, str, str]]:
    return []


def _keyed_models(tmp_path: Path, told: list[tuple[str | None, str, str]], models_fit: int,
                  **loader: Any) -> tuple[KeyedModels, FakeLoader, Metrics]:
    one = footprint_bytes_of(tmp_path)
    fake, metrics = FakeLoader(tmp_path, **loader), Metrics()

    def tell(metadata: ModelMetadata, kind: str, fields: Mapping[str, object]) -> None:
        told.append((metadata.key, metadata.version, kind))
    keyed = KeyedModels(fake, metrics, models_fit * one + one // 2, tell,  # type: ignore[arg-type]
                        retry_waits_s=(0.2, 0.2))
    keyed.start()
    return keyed, fake, metrics


def footprint_bytes_of(tmp_path: Path) -> int:
    sample = tmp_path / "sample"
    sample.mkdir()
    (sample / "variables").write_bytes(b"\0" * MODEL_FILE_BYTES)
    return footprint_bytes(sample)


def _until(condition: Any, timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition()


@pytest.fixture
def stopping() -> Iterator[list[KeyedModels]]:
    started: list[KeyedModels] = []
    yield started
    for keyed in started:
        keyed.stop()


def test_a_key_asked_for_is_loaded_off_the_batch_and_served_from_the_next(
        tmp_path: Path, told: list[tuple[str | None, str, str]],
        stopping: list[KeyedModels]) -> None:
    keyed, loader, metrics = _keyed_models(tmp_path, told, models_fit=3)
    stopping.append(keyed)
    keyed.announce(_keyed("132"))
    assert keyed.serving(["132", "48"]) == {}  # not loaded yet: the fleet answers, no wait
    _until(lambda: "132" in keyed.serving(["132"]))
    assert keyed.serving(["132", "48"])["132"].version == "k1"  # 48 has no model at all
    assert loader.loads == [("132", "k1")]
    assert told == [("132", "k1", "loaded")]
    assert metrics.keyed_loaded._value.get() == 1


def _loads(metrics: Metrics, outcome: str = "loaded") -> float:
    return float(metrics.keyed_loads.labels(outcome)._value.get())


def test_past_the_budget_a_key_asked_for_more_often_than_the_least_recently_used_takes_its_place(
        tmp_path: Path, told: list[tuple[str | None, str, str]],
        stopping: list[KeyedModels]) -> None:
    keyed, loader, metrics = _keyed_models(tmp_path, told, models_fit=2)
    stopping.append(keyed)
    for key in ("1", "2", "3"):
        keyed.announce(_keyed(key))
    for n, key in enumerate(("1", "2"), 1):  # within the budget: loaded when first asked
        keyed.serving([key])
        _until(lambda n=n: _loads(metrics) == n)  # type: ignore[misc]
    keyed.serving(["1"])  # 2 is the least recently used, asked for in one batch
    assert keyed.serving(["3"]) == {}  # one batch: not more often than 2, not let in
    _until(lambda: _loads(metrics, "not_admitted") == 1)
    keyed.serving(["3"])  # in two batches now: it takes 2's place
    _until(lambda: _loads(metrics) == 3)
    assert set(keyed.serving(["1", "3"])) == {"1", "3"}
    for _ in range(5):  # 2 back, asked for more often than 1, now the least recently used
        keyed.serving(["2"])
    _until(lambda: _loads(metrics) == 4)
    assert set(keyed.serving(["1", "2", "3"])) == {"2", "3"}
    assert loader.loads == [("1", "k1"), ("2", "k1"), ("3", "k1"), ("2", "k1")]
    assert metrics.keyed_evictions._value.get() == 2
    assert metrics.keyed_loaded._value.get() == 2
    assert metrics.keyed_bytes._value.get() <= metrics.keyed_budget_bytes._value.get()


def test_how_often_a_key_was_asked_for_halves_as_batches_go_by(
        tmp_path: Path, told: list[tuple[str | None, str, str]],
        stopping: list[KeyedModels]) -> None:
    keyed, loader, metrics = _keyed_models(tmp_path, told, models_fit=1)
    stopping.append(keyed)
    for key in ("1", "2"):
        keyed.announce(_keyed(key))
    keyed.serving(["1"])
    _until(lambda: _loads(metrics) == 1)
    for _ in range(7):  # 1 asked for in 8 batches
        keyed.serving(["1"])
    for _ in range(AGING_BATCHES - 8):  # then long quiet: 1's count halves to 4
        keyed.serving([])
    for _ in range(4):  # 2 asked for 4 times: as often as 1 now, not more
        keyed.serving(["2"])
    _until(lambda: _loads(metrics, "not_admitted") >= 1)
    keyed.serving(["2"])  # a fifth: more often than 1
    _until(lambda: _loads(metrics) == 2)
    assert loader.loads == [("1", "k1"), ("2", "k1")]


def test_a_new_version_of_a_loaded_key_takes_over_once_loaded(
        tmp_path: Path, told: list[tuple[str | None, str, str]],
        stopping: list[KeyedModels]) -> None:
    keyed, _, _ = _keyed_models(tmp_path, told, models_fit=2)
    stopping.append(keyed)
    keyed.announce(_keyed("7"))
    keyed.serving(["7"])
    _until(lambda: "7" in keyed.serving(["7"]))
    keyed.announce(_keyed("7", version="k2"))
    _until(lambda: keyed.serving(["7"])["7"].version == "k2")


def test_a_keyed_model_that_cannot_load_leaves_its_key_on_the_fleet_and_alerts(
        tmp_path: Path, told: list[tuple[str | None, str, str]],
        stopping: list[KeyedModels]) -> None:
    keyed, loader, metrics = _keyed_models(tmp_path, told, models_fit=2, broken={"bad"})
    stopping.append(keyed)
    keyed.announce(_keyed("9", version="bad"))
    keyed.serving(["9"])
    _until(lambda: told == [("9", "bad", "load_failed")])
    assert metrics.keyed_refused._value.get() == 1
    for _ in range(3):
        assert keyed.serving(["9"]) == {}
    time.sleep(0.2)
    assert loader.loads == [] and len(told) == 1  # not tried again for every batch
    keyed.announce(_keyed("9", version="k2"))  # a new version is tried
    keyed.serving(["9"])
    _until(lambda: "9" in keyed.serving(["9"]))
    assert metrics.keyed_refused._value.get() == 0


def test_a_storage_outage_is_retried_after_a_backoff_when_the_key_comes_back(
        tmp_path: Path, told: list[tuple[str | None, str, str]],
        stopping: list[KeyedModels]) -> None:
    keyed, loader, _ = _keyed_models(tmp_path, told, models_fit=2, outages=1)
    stopping.append(keyed)
    keyed.announce(_keyed("9"))
    keyed.serving(["9"])
    _until(lambda: told == [("9", "k1", "load_failed")])
    _until(lambda: "9" in keyed.serving(["9"]), timeout_s=3)
    assert loader.loads == [("9", "k1")]


def _rollout(key: str, champion: str, candidate: str, mode: str = SHADOW,
             weight: float = 0.0) -> ModelMetadata:
    """``key``'s state with ``candidate`` beside ``champion``."""
    return dataclasses.replace(_keyed(key, champion), rollout=Rollout(
        _keyed(key, candidate), mode, weight, datetime.now(UTC), RolloutPolicy()))


def _candidate(keyed: KeyedModels, key: str) -> tuple[str, str, float] | None:
    """The candidate a batch gets for ``key``: version, mode, weight."""
    served = keyed.serving([key]).get(key)
    c = served.candidate if served is not None else None
    return None if c is None else (c.version, c.mode, c.weight)


def _shadow_loaded(keyed: KeyedModels) -> None:
    """Key 5's model k1 with k2 in shadow beside it, both loaded."""
    keyed.announce(_rollout("5", "k1", "k2"))
    keyed.serving(["5"])
    _until(lambda: _candidate(keyed, "5") == ("k2", SHADOW, 0.0))


def test_a_keys_candidate_loads_beside_its_model_and_a_promotion_needs_no_load(
        tmp_path: Path, told: list[tuple[str | None, str, str]],
        stopping: list[KeyedModels]) -> None:
    keyed, loader, metrics = _keyed_models(tmp_path, told, models_fit=3)
    stopping.append(keyed)
    keyed.announce(_rollout("5", "k1", "k2", CANARY, 0.25))
    keyed.serving(["5"])
    _until(lambda: _candidate(keyed, "5") == ("k2", CANARY, 0.25))
    assert keyed.serving(["5"])["5"].version == "k1"
    assert metrics.keyed_loaded._value.get() == 2  # both count against the budget
    keyed.announce(dataclasses.replace(_keyed("5", "k2"), previous=_keyed("5", "k1")))
    served = keyed.serving(["5"])["5"]  # at once: the candidate was loaded and warm
    assert (served.version, served.candidate) == ("k2", None)
    assert loader.loads == [("5", "k1"), ("5", "k2")]
    assert metrics.keyed_loaded._value.get() == 1


def test_a_withdrawn_keyed_candidate_leaves_and_one_that_cannot_load_leaves_its_key_served(
        tmp_path: Path, told: list[tuple[str | None, str, str]],
        stopping: list[KeyedModels]) -> None:
    keyed, _, metrics = _keyed_models(tmp_path, told, models_fit=3, broken={"bad"})
    stopping.append(keyed)
    _shadow_loaded(keyed)
    keyed.announce(_keyed("5", "k1"))  # rolled back: the candidate withdrawn
    assert keyed.serving(["5"])["5"].candidate is None
    assert metrics.keyed_loaded._value.get() == 1
    keyed.announce(_rollout("5", "k1", "bad"))
    keyed.serving(["5"])
    _until(lambda: ("5", "bad", "load_failed") in told)
    for _ in range(3):
        served = keyed.serving(["5"])["5"]
        assert (served.version, served.candidate) == ("k1", None)
    assert metrics.keyed_refused._value.get() == 1


def test_a_keyed_candidate_unfit_on_a_batch_leaves_and_its_key_keeps_its_model(
        tmp_path: Path, told: list[tuple[str | None, str, str]],
        stopping: list[KeyedModels]) -> None:
    keyed, loader, _ = _keyed_models(tmp_path, told, models_fit=3)
    stopping.append(keyed)
    _shadow_loaded(keyed)
    keyed.unfit("5", UnfitModel("fails on everything"), candidate=True)
    assert ("5", "k2", "retired") in told
    for _ in range(3):
        assert keyed.serving(["5"])["5"].candidate is None
    time.sleep(0.1)
    assert loader.loads == [("5", "k1"), ("5", "k2")]  # not loaded again


def test_a_withdrawn_key_leaves_memory_and_is_not_loaded_again(
        tmp_path: Path, told: list[tuple[str | None, str, str]],
        stopping: list[KeyedModels]) -> None:
    keyed, loader, metrics = _keyed_models(tmp_path, told, models_fit=3)
    stopping.append(keyed)
    _shadow_loaded(keyed)
    keyed.withdraw("5")
    for _ in range(3):
        assert keyed.serving(["5"]) == {}  # the fleet model answers its trips
    time.sleep(0.1)
    assert loader.loads == [("5", "k1"), ("5", "k2")]
    assert (metrics.keyed_loaded._value.get(), metrics.keyed_bytes._value.get()) == (0, 0)
