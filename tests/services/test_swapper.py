"""The swapper: newest offered version wins, refusals keep the current one serving."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edml.contracts import ModelEvent, ModelMetadata, RolloutPolicy
from edml.errors import ArtifactError, StorageError
from edml.loader import LoadedVersion
from edml.samples import sample_events
from edml.serving_state import champion, promoted, with_candidate
from services.metrics import Metrics
from services.model_slot import ModelSlot
from services.swapper import ModelSwapper

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
BASE = next(v for v, _ in sample_events() if isinstance(v, ModelMetadata))


def _version(version: str, name: str = "trips") -> ModelMetadata:
    return dataclasses.replace(BASE, name=name, version=version)


class FakeLoader:
    """Refuses ``broken`` versions for good; fails ``outage`` loads for storage first."""

    def __init__(self, broken: set[str], outage: int = 0) -> None:
        self.broken, self.loaded = broken, []  # type: ignore[var-annotated]
        self.outage, self.attempts = outage, 0

    def load(self, metadata: ModelMetadata, on_retry: Any = None) -> LoadedVersion:
        if metadata.version in self.broken:
            raise ArtifactError(f"{metadata.version}: checksum mismatch")
        self.attempts += 1
        if self.attempts <= self.outage:
            error = StorageError("connection refused")
            if on_retry is not None:
                on_retry(metadata, 1, error, 0.1)
            raise error
        self.loaded.append(metadata.version)
        return LoadedVersion(metadata, model=None, load_seconds=0.01)  # type: ignore[arg-type]


def _until(condition: Any, timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition()


def _swapper(broken: set[str], events: list[ModelEvent], outage: int = 0,
             **options: Any) -> tuple[ModelSwapper, ModelSlot, Metrics, FakeLoader]:
    """A started swapper of model "trips" on worker-1; ``options`` go to ModelSwapper."""
    slot, metrics, loader = ModelSlot(), Metrics(), FakeLoader(broken, outage)
    swapper = ModelSwapper("trips", loader, slot, metrics, events.append,  # type: ignore[arg-type]
                           "worker-1", **options)
    swapper.start()
    return swapper, slot, metrics, loader


def test_an_offered_version_is_loaded_swapped_in_and_announced(tmp_path: Path) -> None:
    events: list[ModelEvent] = []
    swapper, slot, metrics, _ = _swapper(set(), events)
    swapper.offer(_version("v1"))
    _until(lambda: slot.current is not None)
    swapper.stop()
    assert slot.current.version == "v1"  # type: ignore[union-attr]
    assert [(e.kind, e.model_version, e.worker) for e in events] == [
        ("loaded", "v1", "worker-1")]
    assert metrics.registry.get_sample_value(
        "edml_model_info", {"model_name": "trips", "model_version": "v1"}) == 1


def test_a_refused_version_leaves_the_current_one_serving_and_raises_the_alarm() -> None:
    events: list[ModelEvent] = []
    swapper, slot, metrics, _ = _swapper({"v2"}, events)
    swapper.offer(_version("v1"))
    _until(lambda: slot.current is not None)
    swapper.offer(_version("v2"))
    _until(lambda: len(events) == 2)
    swapper.stop()
    assert slot.current.version == "v1"  # type: ignore[union-attr]
    assert (events[1].kind, events[1].error_kind) == ("load_failed", "ArtifactError")
    assert metrics.registry.get_sample_value(
        "edml_model_load_failures_total",
        {"model_version": "v2", "kind": "ArtifactError"}) == 1


def test_other_model_names_are_ignored() -> None:
    swapper, slot, _, loader = _swapper(set(), [])
    swapper.offer(_version("v1", name="fares"))
    time.sleep(0.1)
    swapper.stop()
    assert slot.current is None and loader.loaded == []


def test_a_retired_version_hands_back_to_the_one_it_replaced_and_stays_out_after_a_restart(
    tmp_path: Path,
) -> None:
    from edml.codec import Codec
    from edml.errors import UnfitModel
    from services.model_table import ModelTable

    table = ModelTable(tmp_path / "models.rocksdb", Codec())
    events: list[ModelEvent] = []
    swapper, slot, _, _ = _swapper(set(), events, table=table)
    swapper.offer(_version("v1"))
    _until(lambda: slot.current is not None)
    swapper.offer(_version("v2"))
    _until(lambda: slot.current is not None and slot.current.version == "v2")
    now = swapper.retire(slot.current, UnfitModel("fails on everything"))  # type: ignore[arg-type]
    assert now is not None and now.version == "v1" and slot.current.version == "v1"  # type: ignore[union-attr]
    assert (events[-1].kind, events[-1].model_version, events[-1].error_kind) == (
        "retired", "v2", "UnfitModel")
    swapper.stop()

    # a restart: a new slot and swapper on the same table, offered the latest (v2) again
    events.clear()
    swapper, restarted, _, again = _swapper(set(), events, table=table)
    swapper.offer(_version("v2"))
    _until(lambda: restarted.current is not None)
    swapper.stop()
    table.close()
    assert restarted.current.version == "v1" and again.loaded == ["v1"]  # type: ignore[union-attr]
    assert [(e.kind, e.model_version) for e in events] == [("load_failed", "v2"),
                                                           ("loaded", "v1")]


def test_retiring_the_only_version_empties_the_slot() -> None:
    from edml.errors import UnfitModel

    swapper, slot, _, _ = _swapper(set(), [])
    swapper.offer(_version("v1"))
    _until(lambda: slot.current is not None)
    assert swapper.retire(slot.current, UnfitModel("no")) is None  # type: ignore[arg-type]
    swapper.stop()
    assert slot.current is None and not slot.ready.is_set()


def test_a_version_refused_for_a_storage_outage_alerts_once_and_is_retried_until_it_loads(
) -> None:
    events: list[ModelEvent] = []
    swapper, slot, _, loader = _swapper(set(), events, outage=3, retry_waits_s=(0.05, 0.2))
    swapper.offer(_version("v1"))
    _until(lambda: slot.current is not None)
    swapper.stop()
    assert loader.attempts == 4  # three outages, then storage is back
    assert [(e.kind, e.error_kind) for e in events] == [("load_failed", "StorageError"),
                                                        ("loaded", None)]
    assert "retrying" in (events[0].message or "")


def test_a_newer_version_supersedes_a_pending_retry() -> None:
    events: list[ModelEvent] = []
    swapper, slot, _, loader = _swapper(set(), events, outage=1, retry_waits_s=(5.0, 5.0))
    swapper.offer(_version("v1"))
    _until(lambda: len(events) == 1)
    swapper.offer(_version("v2"))
    _until(lambda: slot.current is not None)
    time.sleep(0.1)
    swapper.stop()
    assert slot.current.version == "v2" and loader.loaded == ["v2"]  # type: ignore[union-attr]


def _lineup(slot: ModelSlot) -> tuple[str, str | None, str, float]:
    lineup = slot.lineup()
    assert lineup is not None
    return (lineup.champion.version, lineup.candidate.version if lineup.candidate else None,
            lineup.mode, lineup.weight)


def test_a_candidate_is_loaded_beside_the_champion_and_promotion_needs_no_load() -> None:
    events: list[ModelEvent] = []
    swapper, slot, metrics, loader = _swapper(set(), events)
    v1 = champion(_version("v1"), None, "publish")
    swapper.offer(v1)
    _until(lambda: slot.current is not None)
    swapper.offer(with_candidate(v1, _version("v2"), "canary", 0.2, RolloutPolicy(), NOW))
    _until(lambda: slot.candidate is not None)
    assert _lineup(slot) == ("v1", "v2", "canary", 0.2)
    assert metrics.registry.get_sample_value(
        "edml_candidate_info", {"model_version": "v2", "mode": "canary"}) == 0.2

    swapper.offer(promoted(with_candidate(v1, _version("v2"), "canary", 0.2, RolloutPolicy(),
                                          NOW), "controller"))
    _until(lambda: slot.current is not None and slot.current.version == "v2")
    swapper.stop()
    assert _lineup(slot) == ("v2", None, "", 0.0)
    assert loader.loaded == ["v1", "v2"]  # promotion swapped the loaded candidate in


def test_a_withdrawn_candidate_leaves_and_a_refused_one_never_touches_the_champion() -> None:
    events: list[ModelEvent] = []
    swapper, slot, _, _ = _swapper({"v3"}, events)
    v1 = champion(_version("v1"), None, "publish")
    swapper.offer(with_candidate(v1, _version("v2"), "shadow", 0.0, RolloutPolicy(), NOW))
    _until(lambda: slot.candidate is not None)
    swapper.offer(v1)  # rolled back: the candidate withdrawn
    _until(lambda: slot.candidate is None)
    swapper.offer(with_candidate(v1, _version("v3"), "shadow", 0.0, RolloutPolicy(), NOW))
    _until(lambda: any(e.kind == "load_failed" for e in events))
    swapper.stop()
    assert _lineup(slot) == ("v1", None, "", 0.0)
    assert [(e.kind, e.model_version) for e in events] == [
        ("loaded", "v1"), ("loaded", "v2"), ("load_failed", "v3")]
