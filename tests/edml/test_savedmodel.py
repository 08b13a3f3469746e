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
