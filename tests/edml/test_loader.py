"""Loading a version: cache, checksum, signature, retries; with a real SavedModel."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from edml.artifacts import artifact_uri, checksum_of
from edml.contracts import ModelMetadata, TensorSpec
from edml.errors import ArtifactError, ModelError, StorageError
from edml.loader import ModelLoader
from edml.local.processes import free_port
from edml.samples import sample_events
from edml.savedmodel import load_savedmodel
from edml.settings import StorageSettings
from edml.storage import FileStore

pytestmark = pytest.mark.tf


@pytest.fixture
def stored(quick_model: Path, tmp_path: Path) -> ModelMetadata:
    """The quick model in a file store, described as its event would describe it."""
    uri = artifact_uri((tmp_path / "store").as_uri(), "trips", "v1")
    FileStore().upload_dir(quick_model, uri)
    base = next(v for v, _ in sample_events() if isinstance(v, ModelMetadata))
    return dataclasses.replace(base, name="trips", version="v1", storage_uri=uri,
                               checksum=checksum_of(quick_model),
                               signature=load_savedmodel(quick_model).signature)


def _loader(tmp_path: Path, sleeps: list[float] | None = None,
            storage: StorageSettings | None = None) -> ModelLoader:
    storage = storage or StorageSettings(uri=(tmp_path / "store").as_uri())
    return ModelLoader(storage, tmp_path / "cache", attempts=3,
                       backoff_s=0.5, sleep=(sleeps if sleeps is not None else []).append)


def test_a_stored_version_loads_warms_up_and_is_cached(stored: ModelMetadata,
                                                       tmp_path: Path) -> None:
    loaded = _loader(tmp_path).load(stored)
    assert loaded.version == "v1" and loaded.load_seconds > 0
    assert checksum_of(tmp_path / "cache" / "trips" / "v1") == stored.checksum


def test_a_cached_version_is_reused_without_storage(stored: ModelMetadata,
                                                    tmp_path: Path) -> None:
    _loader(tmp_path).load(stored)
    shutil.rmtree(tmp_path / "store")  # storage gone: the cache must do
    assert _loader(tmp_path).load(stored).version == "v1"


def test_a_damaged_cache_is_fetched_anew(stored: ModelMetadata, tmp_path: Path) -> None:
    _loader(tmp_path).load(stored)
    (tmp_path / "cache" / "trips" / "v1" / "edml_model.json").write_text("{}")
    _loader(tmp_path).load(stored)
    assert checksum_of(tmp_path / "cache" / "trips" / "v1") == stored.checksum


def test_a_checksum_mismatch_is_refused_and_nothing_is_cached(stored: ModelMetadata,
                                                              tmp_path: Path) -> None:
    wrong = dataclasses.replace(stored, checksum="sha256:" + "f" * 64)
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        _loader(tmp_path).load(wrong)
    assert not (tmp_path / "cache" / "trips" / "v1").exists()
    assert not list((tmp_path / "cache").glob(".download-*"))


def test_a_missing_artifact_is_refused_without_retrying(stored: ModelMetadata,
                                                        tmp_path: Path) -> None:
    missing = dataclasses.replace(stored, version="v9",
                                  storage_uri=stored.storage_uri.replace("v1", "v9"))
    sleeps: list[float] = []
    with pytest.raises(ArtifactError, match="no artifact"):
        _loader(tmp_path, sleeps).load(missing)
    assert sleeps == []


def test_a_signature_the_records_cannot_satisfy_is_refused_before_download(
    stored: ModelMetadata, tmp_path: Path
) -> None:
    needs_distance = dataclasses.replace(stored, signature=dataclasses.replace(
        stored.signature, inputs=(TensorSpec("trip_distance", "float32"),)))
    with pytest.raises(ModelError, match="'trip_distance' is not a TripRequest field"):
        _loader(tmp_path).load(needs_distance)
    assert not (tmp_path / "cache").exists()


def test_unreachable_storage_is_retried_with_backoff_then_refused(
    stored: ModelMetadata, tmp_path: Path
) -> None:
    dead = StorageSettings(uri="gs://bucket/models", endpoint=f"http://127.0.0.1:{free_port()}",
                           timeout_s=1)
    on_gcs = dataclasses.replace(stored, storage_uri="gs://bucket/models/trips/v1/")
    sleeps: list[float] = []
    with pytest.raises(StorageError):
        _loader(tmp_path, sleeps, dead).load(on_gcs)
    assert sleeps == [0.5, 1.0]  # three attempts, doubling waits


@pytest.mark.parametrize("where", ["file:///etc/", "elsewhere", "../store/trips/v1",
                                   "http://example.invalid/trips/v1/"])
def test_a_model_event_pointing_outside_the_storage_roots_is_refused_before_any_copy(
    where: str, stored: ModelMetadata, tmp_path: Path
) -> None:
    # a decoy: the very same files, checksum and all, in a folder nobody configured
    decoy = tmp_path / "elsewhere" / "trips" / "v1"
    shutil.copytree(tmp_path / "store" / "trips" / "v1", decoy)
    uri = {"elsewhere": decoy.as_uri() + "/",
           "../store/trips/v1": (tmp_path / "store").as_uri() + "/../store/x/../../etc/"
           }.get(where, where)
    pointed = dataclasses.replace(stored, storage_uri=uri)
    with pytest.raises(ArtifactError, match="not the folder of trips v1 under the allowed"):
        _loader(tmp_path).load(pointed)
    assert not (tmp_path / "cache").exists()


def test_a_root_allowed_in_the_settings_is_loaded_from(stored: ModelMetadata,
                                                       tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(tmp_path / "store", other)
    settings = StorageSettings(uri="gs://bucket/models", allowed_roots=f" {other.as_uri()} ")
    moved = dataclasses.replace(stored, storage_uri=f"{other.as_uri()}/trips/v1/")
    assert _loader(tmp_path, storage=settings).load(moved).version == "v1"
