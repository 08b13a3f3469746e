"""The RocksDB model table: latest per name, and the offset it reflects, across restarts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from edml.codec import Codec
from edml.contracts import ModelMetadata
from edml.errors import StorageError
from edml.samples import sample_events
from services.model_table import ModelTable

BASE = next(v for v, _ in sample_events() if isinstance(v, ModelMetadata))


def _version(name: str, version: str) -> ModelMetadata:
    return dataclasses.replace(BASE, name=name, version=version)


def test_latest_per_name_and_offset_survive_a_reopen(tmp_path: Path) -> None:
    table = ModelTable(tmp_path / "models.rocksdb", Codec())
    table.put(0, _version("a", "v1"))
    table.put(1, _version("b", "v1"))
    table.put(2, _version("a", "v2"))
    table.close()

    again = ModelTable(tmp_path / "models.rocksdb", Codec())
    assert again.get("a") == _version("a", "v2")
    assert again.get("b") == _version("b", "v1")
    assert again.get("c") is None
    assert again.offset() == 2
    again.close()


def test_a_table_held_by_another_worker_is_a_storage_error(tmp_path: Path) -> None:
    first = ModelTable(tmp_path / "models.rocksdb", Codec())
    try:
        with pytest.raises(StorageError, match="cannot open the model table"):
            ModelTable(tmp_path / "models.rocksdb", Codec())
    finally:
        first.close()
