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
    evaluator.predicted("v1", [("a", 600.0)], now_s=0)
    evaluator.actual("a", 720.0, now_s=10)
    evaluator.actual("b", 300.0, now_s=10)
    evaluator.predicted("v2", [("b", 420.0)], now_s=20)
    assert _sum(metrics, "v1") == (1.0, 2.0)  # minutes
    assert _sum(metrics, "v2") == (1.0, 2.0)
    assert evaluator.joined == 2
    evaluator.close()


def test_halves_older_than_the_horizon_expire(tmp_path: Path) -> None:
    evaluator = LiveEvaluator(tmp_path / "joins.rocksdb", Metrics(), horizon_s=100)
    evaluator.predicted("v1", [("old", 600.0)], now_s=0)
    evaluator.predicted("v1", [("new", 600.0)], now_s=150)
    assert evaluator.expire(now_s=160) == 1
    evaluator.close()
