"""A SavedModel as edml serves it: its serving signature as a contract, and a predict call
on request columns. TensorFlow is imported only when a model is loaded.

Both the publisher (smoke test before publishing) and the scoring service (load before a
swap) go through here, so both see a model the same way.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edml.columns import input_columns
from edml.contracts import ModelSignature, TensorSpec
from edml.errors import ModelError
from edml.samples import smoke_requests

__all__ = [
    "MAX_PLAUSIBLE_SECONDS",
    "SERVING_SIGNATURE",
    "LoadedModel",
    "Predictor",
    "check_answers",
    "collect_dropped_models",
    "import_tensorflow_to_serve",
    "load_savedmodel",
    "smoke_test",
    "usable",
]

SERVING_SIGNATURE = "serving_default"
MAX_PLAUSIBLE_SECONDS = 86_400.0  # a day; the TLC's data has no longer taxi trip


class Predictor(Protocol):
    """A model as edml calls it: the columns its signature names in (built by
    ``edml.columns``), one duration per row out."""

    @property
    def signature(self) -> ModelSignature: ...

    def predict(self, columns: dict[str, np.ndarray]) -> np.ndarray: ...


def usable(predictions: np.ndarray) -> np.ndarray:
    """Per row: is the model's answer a duration (finite and positive)? Where it is not, the
    stream dead-letters the trip and batch scoring leaves its prediction empty."""
    mask: np.ndarray = np.isfinite(predictions) & (predictions > 0)
    return mask


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
    predictions = model.predict(input_columns(model.signature).from_requests(requests))
    check_answers(predictions, len(requests), f"{what}: smoke test")
    return predictions


@dataclass
class LoadedModel:
    path: Path
    signature: ModelSignature
    _fn: Any
    # the signature's graph function called on its flat inputs, or None: see _flat_call
    _flat: Callable[[list[Any]], list[Any]] | None = None

    def predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """One call for the whole batch; returns the output as a 1-D float64 array."""
        import tensorflow as tf

        try:
            inputs = self.signature.inputs
            tensors = [tf.constant(columns[spec.name], dtype=spec.dtype) for spec in inputs]
            if self._flat is not None:
                output = self._flat(tensors)[0]
            else:
                output = self._fn(**{spec.name: tensor for spec, tensor in zip(
                    inputs, tensors, strict=True)})[self.signature.output.name]
        except KeyError as exc:
            raise ModelError(f"{self.path}: no column for input {exc}") from exc
        except (tf.errors.OpError, ValueError, TypeError) as exc:
            raise ModelError(f"{self.path}: prediction failed: {exc}") from exc
        return np.asarray(output, dtype=np.float64).reshape(-1)


def _flat_call(fn: Any, signature: ModelSignature) -> Callable[[list[Any]], list[Any]] | None:
    """The signature's graph function, called on its inputs in ``signature.inputs``' order,
    without the binding of keyword arguments to the structured signature that a call by
    name goes through: ~230 us of a 19-row call's ~680 on the trip model, a third of it,
    and a worker serving keyed models makes a call per key per batch. The graph function
    and its captured variables are private to TensorFlow (2.21 here), so this is used only
    where they are found and the function's flat inputs are the 1-D tensors of
    ``signature.inputs``, in that order; else None, and the call goes by name."""
    import tensorflow as tf

    inference = getattr(fn, "_inference_function", None)
    call_flat = getattr(inference, "call_flat", None)
    try:
        specs = tf.nest.flatten(fn.structured_input_signature)
        captured = list(fn.captured_inputs)
        outputs = tf.nest.flatten(fn.structured_outputs)
    except (AttributeError, TypeError, ValueError):
        return None
    if call_flat is None or len(outputs) != 1 or [
            (spec.name, spec.dtype.name, spec.shape.as_list()) for spec in specs] != [
            (spec.name, spec.dtype, [None]) for spec in signature.inputs]:
        return None

    def call(tensors: list[Any]) -> list[Any]:
        answer: list[Any] = call_flat(*tensors, *captured)
        return answer

    return call


def import_tensorflow_to_serve() -> None:
    """Import TensorFlow for loading SavedModels, without the Keras it imports eagerly: a
    third of its import time here (~1 s, matplotlib included), spent to register Keras
    optimizers for SavedModels that carry them. A serving signature needs none of it:
    ``tf.saved_model.load`` restores the functions and variables, and a model answers the
    same (tested). Keras stays importable afterwards for whoever wants it."""
    if "tensorflow" in sys.modules:
        return
    block = "keras" not in sys.modules
    if block:
        sys.modules["keras"] = None  # type: ignore[assignment]  # import keras: ImportError
    try:
        import tensorflow  # noqa: F401
    finally:
        if block and "keras" in sys.modules and sys.modules["keras"] is None:
            del sys.modules["keras"]


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
    model = LoadedModel(path, signature, fn, _flat_call(fn, signature))
    model._loaded = loaded  # type: ignore[attr-defined]
    _settle_heap()
    return model


# A full collection scans every loaded model's object graph: ~0.3 s with 80 keyed models
# loaded, holding the interpreter the scoring thread needs. Loads closer together than this
# (keyed models loading on demand) collect only what is new.
_FULL_COLLECTION_EVERY_S = 30.0
_last_full_collection = -_FULL_COLLECTION_EVERY_S


def _settle_heap() -> None:
    """Move what is alive now (the models' large TensorFlow object graphs) out of the
    cyclic collector's sight: its full collections otherwise rescan them every few
    thousand records, ~4 us of CPU per record measured at 1,000-record batches. A full
    collection first, so a replaced version can still be freed, at most every
    ``_FULL_COLLECTION_EVERY_S``; the loads between collect only what is new."""
    if time.monotonic() - _last_full_collection >= _FULL_COLLECTION_EVERY_S:
        collect_dropped_models()
    else:
        gc.collect()
        gc.freeze()


def collect_dropped_models() -> None:
    """Free the models nothing refers to any more (replaced, evicted): their object graphs
    are frozen out of the collector's sight with the rest, so only a full collection of
    everything, unfrozen, finds their cycles."""
    global _last_full_collection
    _last_full_collection = time.monotonic()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
