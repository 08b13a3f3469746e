"""Artifact storage: a local directory and the real GCS emulator."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edml.artifacts import checksum_of
from edml.errors import ArtifactError, ConfigError, StorageError
from edml.local.processes import free_port
from edml.settings import StorageSettings
from edml.storage import ArtifactStore, FileStore, open_store


def _model_dir(root: Path) -> Path:
    (root / "variables").mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(b"graph" * 1000)
    (root / "variables" / "variables.data-00000-of-00001").write_bytes(bytes(range(256)) * 64)
    return root


def _round_trip(store: ArtifactStore, uri: str, tmp_path: Path) -> None:
    model = _model_dir(tmp_path / "model")
    assert not store.exists(uri)
    store.upload_dir(model, uri)
    assert store.exists(uri)
    store.download_dir(uri, tmp_path / "back")
    assert checksum_of(tmp_path / "back") == checksum_of(model)
    with pytest.raises(ArtifactError, match="exists already"):
        store.upload_dir(model, uri)


def test_file_store_round_trips_and_never_overwrites(tmp_path: Path) -> None:
    _round_trip(FileStore(), (tmp_path / "store" / "m" / "1").as_uri() + "/", tmp_path)


@pytest.mark.gcs
def test_gcs_store_round_trips_and_never_overwrites(gcs: StorageSettings, tmp_path: Path) -> None:
    _round_trip(open_store(gcs), f"{gcs.uri}/m/1/", tmp_path)


@pytest.mark.gcs
def test_downloading_a_missing_artifact_is_an_artifact_error(
    gcs: StorageSettings, tmp_path: Path
) -> None:
    with pytest.raises(ArtifactError, match="no artifact"):
        open_store(gcs).download_dir(f"{gcs.uri}/nothing/here/", tmp_path / "x")
    with pytest.raises(ArtifactError, match="no artifact"):
        FileStore().download_dir((tmp_path / "none").as_uri(), tmp_path / "y")


def test_unreachable_gcs_fails_with_storage_error_in_bounded_time(tmp_path: Path) -> None:
    settings = StorageSettings(uri="gs://bucket/models", endpoint=f"http://127.0.0.1:{free_port()}",
                               timeout_s=2.0)
    started = time.monotonic()
    with pytest.raises(StorageError, match="listing gs://bucket/models/m/1/"):
        open_store(settings).upload_dir(_model_dir(tmp_path / "m"), "gs://bucket/models/m/1/")
    assert time.monotonic() - started < 30  # a bound on hanging, not a speed claim


def test_an_unknown_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="use file:// or gs://"):
        open_store(StorageSettings(uri="s3://bucket/models"))


def test_only_a_versions_own_folder_under_a_configured_root_is_a_valid_location() -> None:
    from edml.storage import check_artifact_location

    roots = ("gs://models-bucket/edml", "file:///srv/models")
    check_artifact_location("gs://models-bucket/edml/trips/v1/", "trips", "v1", roots)
    check_artifact_location("gs://models-bucket/edml//trips/v1", "trips", "v1", roots)
    check_artifact_location("file:///srv/models/trips/v1/", "trips", "v1", roots)
    for uri in ("gs://other-bucket/edml/trips/v1/", "gs://models-bucket/edml/trips/v2/",
                "gs://models-bucket/edml/trips/v1/../../../secrets/",
                "gs://models-bucket/edml/fares/v1/", "file:///etc/", "s3://models/trips/v1/",
                "https://models-bucket/edml/trips/v1/"):
        with pytest.raises(ArtifactError, match="not the folder of trips v1"):
            check_artifact_location(uri, "trips", "v1", roots)


def test_an_object_name_that_climbs_out_of_the_download_is_refused() -> None:
    from edml.storage import _relative_object

    assert _relative_object("m/trips/v1/variables/x", "m/trips/v1/", "gs://b/m/trips/v1/") == \
        "variables/x"
    for name in ("m/trips/v1/../../../etc/passwd", "m/trips/v1//etc/passwd"):
        with pytest.raises(ArtifactError, match="outside the download"):
            _relative_object(name, "m/trips/v1/", "gs://b/m/trips/v1/")


@pytest.mark.gcs
def test_an_upload_that_fails_half_way_is_invisible_and_a_retry_completes_it(
    gcs: StorageSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edml.storage import COMPLETE, GcsStore

    store, uri = open_store(gcs), f"{gcs.uri}/m/half/"
    model = _model_dir(tmp_path / "model")
    real_put, calls = GcsStore._put, []

    def failing_put(self: GcsStore, blob: object, *args: object, **kwargs: object) -> None:
        calls.append(blob)
        if len(calls) == 2:
            raise StorageError("connection reset in the middle of the upload")
        real_put(self, blob, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(GcsStore, "_put", failing_put)
    with pytest.raises(StorageError):
        store.upload_dir(model, uri)
    monkeypatch.setattr(GcsStore, "_put", real_put)
    assert not store.exists(uri)  # one file is there, the marker is not: no version

    store.upload_dir(model, uri)  # the retry of the same version
    assert store.exists(uri)
    store.download_dir(uri, tmp_path / "back")
    assert checksum_of(tmp_path / "back") == checksum_of(model)
    assert not (tmp_path / "back" / COMPLETE).exists()


def test_a_failed_file_upload_leaves_no_staging_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    model, uri = _model_dir(tmp_path / "model"), (tmp_path / "store" / "m" / "1").as_uri()

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copytree", disk_full)
    with pytest.raises(StorageError, match="No space left"):
        FileStore().upload_dir(model, uri)
    assert list((tmp_path / "store" / "m").iterdir()) == []
