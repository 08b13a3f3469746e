"""Live evaluation: a prediction and its actual duration meet, in either order."""

from __future__ import annotations

from pathlib import Path

from services.evaluation import LiveEvaluator
from services.metrics import Metrics


def _sum(metrics: Metrics, version: str) -> tuple[float, float]:
    count = metrics.registry.get_sample_value("edml_live_abs_error_minutes_count",
                                              {"model_version": version})
    total = metrics.registry.get_sample_value("edml_live_abs_error_minutes_sum",
                                              {"model_version": version})
    return count or 0.0, total or 0.0


def test_prediction_then_actual_and_actual_then_prediction_both_join(tmp_path: Path) -> None:
    metrics = Metrics()
    evaluator = LiveEvaluator(tmp_path / "joins.rocksdb", metrics, horizon_s=3600)
    evaluator.predicted("v1", [("a", 600.0)])
    evaluator.actual("a", 720.0)
    evaluator.actual("b", 300.0)
    evaluator.predicted("v2", [("b", 420.0)])
    assert _sum(metrics, "v1") == (1.0, 2.0)  # minutes
    assert _sum(metrics, "v2") == (1.0, 2.0)
    assert evaluator.joined == 2
    evaluator.close()


def test_a_join_is_counted_once(tmp_path: Path) -> None:
    metrics = Metrics()
    evaluator = LiveEvaluator(tmp_path / "joins.rocksdb", metrics, horizon_s=3600)
    evaluator.predicted("v1", [("a", 600.0)])
    evaluator.actual("a", 720.0)
    evaluator.actual("a", 720.0)  # a duplicate actual waits for a prediction that is gone
    assert _sum(metrics, "v1") == (1.0, 2.0)
    evaluator.close()
