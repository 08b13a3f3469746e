"""Quick training on real TLC trips (shared or shipped), then the export as every other part
sees it."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from rich.console import Console

from trainer.export import METADATA_FILE, predict_seconds
from trainer.pipeline import TrainOutcome, train
from trainer.settings import TrainSettings

pytestmark = pytest.mark.tf

INPUT_NAMES = {"pickup_datetime", "pickup_zone_id", "dropoff_zone_id", "passenger_count"}


def _quick(out: Path, seed: int = 7) -> TrainOutcome:
    return train(TrainSettings(quick=True, quick_rows=3000, out=out, seed=seed))


@pytest.fixture(scope="module")
def trained(trip_data: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainOutcome:
    return _quick(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def signature(trained: TrainOutcome) -> tf.types.experimental.ConcreteFunction:
    return tf.saved_model.load(str(trained.model_dir)).signatures["serving_default"]


def _requests(pickup_zones: np.ndarray, dropoff_zones: np.ndarray,
              hours: np.ndarray) -> dict[str, np.ndarray]:
    base = int(np.datetime64("2019-10-07T00:00", "ms").astype(np.int64))  # a Monday
    return {
        "pickup_datetime": (base + hours * 3_600_000).astype(np.int64),
        "pickup_zone_id": pickup_zones.astype(np.int64),
        "dropoff_zone_id": dropoff_zones.astype(np.int64),
        "passenger_count": np.ones_like(pickup_zones, dtype=np.int64),
    }


def test_the_signature_takes_the_request_fields_as_1d_tensors(signature: object) -> None:
    _, inputs = signature.structured_input_signature  # type: ignore[attr-defined]
    assert set(inputs) == INPUT_NAMES
    assert all(spec.dtype == tf.int64 and spec.shape.as_list() == [None]
               for spec in inputs.values())
    outputs = signature.structured_outputs  # type: ignore[attr-defined]
    assert list(outputs) == ["duration_seconds"]
    assert outputs["duration_seconds"].dtype == tf.float32


def test_the_loaded_model_gives_the_in_memory_numbers_on_1000_requests(
    trained: TrainOutcome, signature: object
) -> None:
    rng = np.random.default_rng(0)
    requests = _requests(rng.integers(1, 264, 1000), rng.integers(1, 264, 1000),
                         rng.integers(0, 24 * 7, 1000))
    served = signature(**{k: tf.constant(v) for k, v in requests.items()})  # type: ignore[operator]
    np.testing.assert_allclose(served["duration_seconds"].numpy(),
                               predict_seconds(trained.model, requests), rtol=1e-5)


def test_predictions_are_positive_and_finite_for_every_zone_and_hour(signature: object) -> None:
    zones, hours = np.meshgrid(np.arange(1, 266), np.arange(24))
    zones, hours = zones.ravel(), hours.ravel()
    for pickup, dropoff in ((zones, zones[::-1]), (zones[::-1], zones)):
        out = signature(**{k: tf.constant(v) for k, v in  # type: ignore[operator]
                           _requests(pickup, dropoff, hours).items()})["duration_seconds"]
        assert np.isfinite(out.numpy()).all() and (out.numpy() > 0).all()


def test_the_model_beats_the_global_median_even_in_quick_mode(trained: TrainOutcome) -> None:
    overall = trained.evaluation.overall
    assert overall.loc["model", "mae_minutes"] < overall.loc["global median", "mae_minutes"]


def test_the_export_carries_its_metadata(trained: TrainOutcome) -> None:
    metadata = json.loads((trained.model_dir / METADATA_FILE).read_text())
    assert {i["name"] for i in metadata["signature"]["inputs"]} == INPUT_NAMES
    assert metadata["signature"]["output"] == {"name": "duration_seconds", "dtype": "float32"}
    assert metadata["metrics"]["mae_minutes"] > 0
    assert "baseline_zone_pair_median_mae_minutes" in metadata["metrics"]
    assert datetime.fromisoformat(metadata["data_window"]["start"]) < \
        datetime.fromisoformat(metadata["data_window"]["end"])
    assert metadata["rows"]["train"] == 3000
    assert metadata["libraries"]["tensorflow"] == tf.__version__


def test_the_report_has_every_plot_and_metrics_json_agrees(trained: TrainOutcome) -> None:
    page = trained.report.read_text()
    for title in ("Predicted vs actual", "Error by hour of day", "Error by borough",
                  "Training curves"):
        assert f'alt="{title}" src="data:image/png;base64,' in page
    metrics = json.loads(trained.metrics.read_text())
    assert set(metrics["overall"]) == {"model", "global median", "zone-pair median"}
    assert len(metrics["mae_minutes_by_hour"]) == 24


def test_the_same_seed_trains_the_same_model(trained: TrainOutcome, tmp_path: Path) -> None:
    again = _quick(tmp_path)
    np.testing.assert_array_equal(again.evaluation.predicted, trained.evaluation.predicted)


def test_train_on_a_missing_file_fails_with_a_clear_message(
    trip_data: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edml.cli", "train", "--quick", "--out", str(tmp_path),
         "--zones", str(trip_data / "taxi_zone_centroids.csv"),
         "--data", str(tmp_path / "missing.parquet")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "DataError: no such trip file" in result.stderr


def test_without_shared_samples_training_uses_the_shipped_sample_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edml.trip_data

    absent = edml.trip_data.TripData(tmp_path / "absent", "nothing")
    monkeypatch.setattr(edml.trip_data, "shared_samples", lambda: absent)
    console = Console(record=True, width=200)
    outcome = train(TrainSettings(quick=True, quick_rows=500, out=tmp_path), console)
    said = console.export_text()
    assert "data: the sample of real TLC trips shipped with edml" in said
    summary = json.loads((outcome.model_dir / METADATA_FILE).read_text())
    assert summary["train_months"] == "2018-01..2019-08"
