"""Whether a model's serving signature can be fed from ``TripRequest`` records.

The publisher refuses a model that fails this check, and the scoring service checks again
before it swaps a model in: a model that needs a field the records do not carry never
serves.
"""

from __future__ import annotations

from typing import Any

from edml.codec import load_schemas
from edml.contracts import ModelSignature, TripRequest
from edml.errors import ModelError

__all__ = ["OUTPUT_DTYPES", "check_signature", "request_field_types"]

# Avro type of a TripRequest field -> TensorFlow dtypes it converts to without loss.
_CONVERTIBLE: dict[str, frozenset[str]] = {
    "int": frozenset({"int32", "int64", "float32", "float64"}),
    "long": frozenset({"int64", "float64"}),
    "float": frozenset({"float32", "float64"}),
    "double": frozenset({"float64", "float32"}),  # float32 by choice: models compute in it
    "string": frozenset({"string"}),
    "boolean": frozenset({"bool", "int32", "int64"}),
}
OUTPUT_DTYPES = frozenset({"float16", "float32", "float64"})


def request_field_types() -> dict[str, Any]:
    """TripRequest field -> its Avro type (a union for optional fields)."""
    schema = load_schemas()[TripRequest.SCHEMA]
    return {field["name"]: field["type"] for field in schema["fields"]}


def _base_type(avro_type: Any) -> str:
    return str(avro_type["type"] if isinstance(avro_type, dict) else avro_type)


def check_signature(signature: ModelSignature) -> None:
    """Raise ModelError naming every input the records cannot satisfy."""
    fields = request_field_types()
    problems = []
    for spec in signature.inputs:
        avro_type = fields.get(spec.name)
        if avro_type is None:
            problems.append(f"input {spec.name!r} is not a TripRequest field "
                            f"(the records carry {', '.join(fields)})")
        elif isinstance(avro_type, list):
            problems.append(f"input {spec.name!r} is an optional TripRequest field: records "
                            "may lack it")
        elif spec.dtype not in _CONVERTIBLE.get(_base_type(avro_type), frozenset()):
            problems.append(f"input {spec.name!r} wants {spec.dtype}, but the records carry "
                            f"{_base_type(avro_type)}")
    if signature.output.dtype not in OUTPUT_DTYPES:
        problems.append(f"output {signature.output.name!r} is {signature.output.dtype}, "
                        "not a float duration")
    if problems:
        raise ModelError("signature does not fit the TripRequest schema: " + "; ".join(problems))
