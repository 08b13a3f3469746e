"""A SavedModel as edml serves it: its serving signature as a contract, and a predict call
on request columns. TensorFlow is imported only when a model is loaded.

Both the publisher (smoke test before publishing) and the scoring service (load before a
swap) go through here, so both see a model the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edml.contracts import ModelSignature, TensorSpec, TripRequest
from edml.errors import ModelError
from edml.samples import smoke_requests

__all__ = [
    "MAX_PLAUSIBLE_SECONDS",
    "SERVING_SIGNATURE",
    "LoadedModel",
    "Predictor",
    "check_answers",
    "load_savedmodel",
    "request_columns",
    "smoke_test",
]

SERVING_SIGNATURE = "serving_default"
MAX_PLAUSIBLE_SECONDS = 86_400.0  # a day; the TLC's data has no longer taxi trip
_EPOCH = np.datetime64("1970-01-01T00:00", "ms")


def request_columns(requests: Sequence[TripRequest]) -> dict[str, np.ndarray]:
    """TripRequest fields as columns; datetimes as wall-clock milliseconds since 1970."""
    return {
        "pickup_datetime": np.array(
            [(np.datetime64(r.pickup_datetime, "ms") - _EPOCH).astype(np.int64)
             for r in requests], dtype=np.int64),
        "pickup_zone_id": np.array([r.pickup_zone_id for r in requests], dtype=np.int64),
        "dropoff_zone_id": np.array([r.dropoff_zone_id for r in requests], dtype=np.int64),
        "passenger_count": np.array([r.passenger_count for r in requests], dtype=np.int64),
    }


class Predictor(Protocol):
    """A model as edml calls it: request columns in, one duration per row out."""

    def predict(self, columns: dict[str, np.ndarray]) -> np.ndarray: ...


def check_answers(predictions: np.ndarray, rows: int, what: str) -> None:
    """One positive, finite duration under a day per row, or ModelError saying what is off."""
    if predictions.shape != (rows,):
        raise ModelError(f"{what}: {predictions.size} answers of shape {predictions.shape} "
                         f"for {rows} rows")
    if not (np.isfinite(predictions).all() and (predictions > 0).all()
            and (predictions < MAX_PLAUSIBLE_SECONDS).all()):
        raise ModelError(f"{what}: implausible durations {predictions.round(1).tolist()}")


def smoke_test(model: Predictor, what: str) -> np.ndarray:
    """The few everyday trips of ``edml.samples``: what the publisher checks before a
    version ships, the worker before it serves one, and again when a version fails."""
    requests = smoke_requests()
    predictions = model.predict(request_columns(requests))
    check_answers(predictions, len(requests), f"{what}: smoke test")
    return predictions


@dataclass
class LoadedModel:
    path: Path
    signature: ModelSignature
    _fn: Any

    def predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """One call for the whole batch; returns the output as a 1-D float64 array."""
        import tensorflow as tf

        try:
            tensors = {spec.name: tf.constant(columns[spec.name], dtype=spec.dtype)
                       for spec in self.signature.inputs}
            output = self._fn(**tensors)[self.signature.output.name]
        except KeyError as exc:
            raise ModelError(f"{self.path}: no column for input {exc}") from exc
        except (tf.errors.OpError, ValueError, TypeError) as exc:
            raise ModelError(f"{self.path}: prediction failed: {exc}") from exc
        return np.asarray(output, dtype=np.float64).reshape(-1)


def load_savedmodel(path: Path, signature_name: str = SERVING_SIGNATURE) -> LoadedModel:
    """Load and describe a SavedModel, or raise ModelError saying why it cannot serve."""
    import tensorflow as tf

    if not (path / "saved_model.pb").is_file():
        raise ModelError(f"{path} is not a SavedModel: no saved_model.pb")
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # TensorFlow raises many types for a corrupt model
        raise ModelError(f"{path}: the SavedModel does not load: {type(exc).__name__}: "
                         f"{str(exc)[:500]}") from exc
    signatures = getattr(loaded, "signatures", {})
    if signature_name not in signatures:
        raise ModelError(f"{path} has no {signature_name!r} signature "
                         f"(it has {', '.join(signatures) or 'none'})")
    fn = signatures[signature_name]
    _, inputs = fn.structured_input_signature
    outputs = fn.structured_outputs
    if len(outputs) != 1:
        raise ModelError(f"{path}: {signature_name} has {len(outputs)} outputs; edml serves "
                         "one, the duration")
    (output_name, output_spec), = outputs.items()
    signature = ModelSignature(
        name=signature_name,
        inputs=tuple(TensorSpec(name, spec.dtype.name) for name, spec in sorted(inputs.items())),
        output=TensorSpec(output_name, output_spec.dtype.name),
    )
    # keep the loaded object alive: the signature function refers to its variables
    model = LoadedModel(path, signature, fn)
    model._loaded = loaded  # type: ignore[attr-defined]
    return model
