"""Model artifact layout and the manifest checksum."""

from __future__ import annotations

from pathlib import Path

import pytest

from edml.artifacts import artifact_uri, checksum_of, manifest
from edml.errors import ArtifactError


def _model_dir(root: Path) -> Path:
    (root / "variables").mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(b"graph")
    (root / "variables" / "variables.index").write_bytes(b"index")
    return root


def test_manifest_lists_every_file_sorted_with_size_and_hash(tmp_path: Path) -> None:
    entries = manifest(_model_dir(tmp_path))
    assert [(e.path, e.size) for e in entries] == [("saved_model.pb", 5),
                                                    ("variables/variables.index", 5)]


def test_checksum_is_stable_and_changes_with_any_byte(tmp_path: Path) -> None:
    model = _model_dir(tmp_path / "m")
    first = checksum_of(model)
    assert first == checksum_of(model)
    assert first.startswith("sha256:") and len(first) == 7 + 64
    (model / "variables" / "variables.index").write_bytes(b"indeX")
    assert checksum_of(model) != first


def test_checksum_covers_file_names(tmp_path: Path) -> None:
    model = _model_dir(tmp_path / "m")
    first = checksum_of(model)
    (model / "saved_model.pb").rename(model / "other.pb")
    assert checksum_of(model) != first


def test_artifact_uri_is_name_then_version() -> None:
    assert artifact_uri("gs://b/models/", "trip-duration", "1.0") == \
        "gs://b/models/trip-duration/1.0/"


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", "-x", "x" * 129])
def test_unsafe_names_are_refused(bad: str) -> None:
    with pytest.raises(ArtifactError, match="must be"):
        artifact_uri("file:///m", bad, "1")
