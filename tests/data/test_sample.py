"""The project's own sample of real trips: rebuilt the same from the shared samples, and
enough for everything that runs without them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from edml.trip_data import bundled_sample, shared_samples

ROOT = Path(__file__).resolve().parents[2]


def _make_sample_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_sample", ROOT / "data" / "make_sample.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_sample"] = module
    spec.loader.exec_module(module)
    return module


def test_a_rebuild_from_the_shared_samples_gives_the_shipped_files(tmp_path: Path) -> None:
    shared = shared_samples().folder
    if not shared.is_dir():
        pytest.skip(f"needs the full shared TLC samples, absent here ({shared})")
    written = _make_sample_module().make_sample(shared, tmp_path)
    shipped = bundled_sample().folder
    assert sorted(p.name for p in written) == sorted(
        p.name for p in shipped.iterdir() if p.suffix in {".parquet", ".csv"})
    for path in written:
        assert path.read_bytes() == (shipped / path.name).read_bytes(), path.name


def test_the_shipped_rows_are_real_trips_with_the_tlcs_columns_unchanged() -> None:
    shared = shared_samples().folder
    if not shared.is_dir():
        pytest.skip(f"needs the full shared TLC samples, absent here ({shared})")
    name = "yellow_tripdata_sample_2020-04.parquet"
    sample = pq.read_table(bundled_sample().folder / name).to_pandas()
    source = pq.read_table(shared / name).to_pandas()
    assert list(sample.columns) == list(source.columns)
    # every sampled row is a row of the source, value for value
    merged = sample.merge(source.drop_duplicates(), how="left", indicator=True)
    assert (merged["_merge"] == "both").all()


def test_the_sample_covers_every_month_from_2018_to_2020_in_a_few_megabytes() -> None:
    sample = bundled_sample()
    files = sorted(sample.folder.glob("yellow_tripdata_sample_*.parquet"))
    months = [f.stem.rsplit("_", 1)[-1] for f in files]
    assert months[0] == "2018-01" and months[-1] == "2020-12" and len(months) == 34
    assert all(pq.read_metadata(f).num_rows >= 1_500 for f in files)
    assert pq.read_metadata(sample.month("2019-10")).num_rows >= 9_000  # the demo's replay
    assert sample.zones.is_file() and (sample.folder / "taxi_zone_lookup.csv").is_file()
    assert (sample.folder / "README.md").is_file()
    assert sum(f.stat().st_size for f in sample.folder.iterdir()) < 5e6
