"""The SavedModel that every other part serves: one named signature, request fields in,
seconds out, plus ``edml_model.json`` describing how it was made."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from edml.samples import SIGNATURE as SERVED  # the contract this export fulfils
from trainer.model import INPUTS, duration_seconds

__all__ = ["KERAS_FILE", "METADATA_FILE", "OUTPUT", "SERVED", "SIGNATURE",
           "export_saved_model", "load_trainable", "predict_seconds"]

SIGNATURE = SERVED.name
OUTPUT = SERVED.output.name
METADATA_FILE = "edml_model.json"
# the Keras model itself, beside the SavedModel the workers serve: what a retrain starts from
KERAS_FILE = "model.keras"


def predict_seconds(model: keras.Model, inputs: dict[str, np.ndarray],
                    batch_size: int = 8192) -> np.ndarray:
    """The in-memory model's served output, for evaluation and the export parity check."""
    log_seconds = model.predict({k: inputs[k] for k in INPUTS}, batch_size=batch_size, verbose=0)
    seconds: np.ndarray = duration_seconds(tf.constant(log_seconds)).numpy()
    return seconds


def export_saved_model(model: keras.Model, directory: Path, metadata: dict[str, Any]) -> None:
    """Write the SavedModel with the ``serving_default`` signature and its metadata file."""

    def serve(pickup_datetime: tf.Tensor, pickup_zone_id: tf.Tensor, dropoff_zone_id: tf.Tensor,
              passenger_count: tf.Tensor) -> dict[str, tf.Tensor]:
        log_seconds = model({"pickup_datetime": pickup_datetime,
                             "pickup_zone_id": pickup_zone_id,
                             "dropoff_zone_id": dropoff_zone_id,
                             "passenger_count": passenger_count}, training=False)
        return {OUTPUT: tf.cast(duration_seconds(log_seconds), tf.float32)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE, fn=serve,
        input_signature=[tf.TensorSpec([None], tf.int64, name=name) for name in INPUTS],
    )
    archive.write_out(str(directory), verbose=False)
    model.save(directory / KERAS_FILE)
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str) + "\n")


def load_trainable(directory: Path) -> keras.Model | None:
    """The Keras model an artifact was exported from, to train on; None for an artifact
    exported before it was kept."""
    path = directory / KERAS_FILE
    if not path.is_file():
        return None
    # TripFeatures is registered with Keras by trainer.model, imported above
    return keras.models.load_model(path)
