"""SavedModels that differ from a trained one in a known way: for rollout drills (the demo's
deliberately worse version) and the rollout tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import tensorflow as tf

__all__ = ["adding_seconds"]

INPUTS = ("pickup_datetime", "pickup_zone_id", "dropoff_zone_id", "passenger_count")


def adding_seconds(model_dir: Path, out: Path, seconds: float) -> Path:
    """``model_dir``'s model, answering ``seconds`` more for every trip (same signature,
    same training metadata): a version known to be worse by that much."""
    base = tf.saved_model.load(str(model_dir))
    serve = base.signatures["serving_default"]

    class Shifted(tf.Module):  # type: ignore[misc]  # tensorflow is untyped
        def __init__(self) -> None:
            super().__init__()
            self.base = base

        @tf.function(  # type: ignore[untyped-decorator]
            input_signature=[tf.TensorSpec([None], tf.int64, name=n) for n in INPUTS])
        def __call__(self, pickup_datetime: Any, pickup_zone_id: Any, dropoff_zone_id: Any,
                     passenger_count: Any) -> dict[str, Any]:
            answer = serve(pickup_datetime=pickup_datetime, pickup_zone_id=pickup_zone_id,
                           dropoff_zone_id=dropoff_zone_id, passenger_count=passenger_count)
            return {"duration_seconds": answer["duration_seconds"] + seconds}

    shifted = Shifted()
    tf.saved_model.save(shifted, str(out), signatures={"serving_default": shifted.__call__})
    for extra in model_dir.glob("*.json"):  # the trainer's metadata beside the model
        shutil.copy(extra, out / extra.name)
    return out
