"""A serving process imports TensorFlow without Keras, and its models answer the same."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf

_ANSWERS = """
import json, sys
from pathlib import Path
from edml.savedmodel import import_tensorflow_to_serve, load_savedmodel, smoke_test
if sys.argv[2] == "serving":
    import_tensorflow_to_serve()
answers = smoke_test(load_savedmodel(Path(sys.argv[1])), "the model").tolist()
keras_loaded = "keras" in sys.modules
import keras  # still importable afterwards
print(json.dumps({"keras_loaded": keras_loaded, "answers": answers}))
"""


def _answers(model: Path, how: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", _ANSWERS, str(model), how],
                          capture_output=True, text=True, check=True, timeout=120)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_model_loaded_without_keras_answers_exactly_as_with_it(quick_model: Path) -> None:
    serving, usual = _answers(quick_model, "serving"), _answers(quick_model, "usual")
    assert serving["keras_loaded"] is False and usual["keras_loaded"] is True
    assert serving["answers"] == usual["answers"]


def test_the_trip_model_is_called_on_its_flat_inputs_and_answers_as_called_by_name(
        quick_model: Path) -> None:
    import numpy as np

    from edml.columns import input_columns
    from edml.samples import smoke_requests
    from edml.savedmodel import load_savedmodel

    model = load_savedmodel(quick_model)
    assert model._flat is not None
    columns = input_columns(model.signature).from_requests(smoke_requests() * 200)
    flat = model.predict(columns)
    model._flat = None  # the call by name, through the structured signature
    assert np.array_equal(model.predict(columns), flat)


def test_a_signature_of_other_shapes_is_called_by_name(
        tmp_path: Path) -> None:
    import numpy as np
    import tensorflow as tf

    from edml.savedmodel import load_savedmodel

    class Columns(tf.Module):  # type: ignore[misc]  # tensorflow is untyped
        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.int64, name="x")])  # type: ignore[untyped-decorator]
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"seconds": tf.cast(tf.reshape(x, [-1]), tf.float32)}

    module = Columns()
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    model = load_savedmodel(tmp_path)
    assert model._flat is None
    assert model.predict({"x": np.arange(3, dtype=np.int64).reshape(3, 1)}).tolist() == [
        0.0, 1.0, 2.0]
