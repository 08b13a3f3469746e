"""The scoring hot path's Avro decode: a batch of one writer's messages read by cavro, with
logical types left as their Avro values (a timestamp as its long), as the batch's columns
want them.

A batch is read in one call, as one Avro array of its bodies, when it can be proved to
have split exactly where the messages do: every record's encoded size, computed from what
was read, must equal its message's body, and a sentinel after the array must be read as
itself. A batch that fails either check (some message in it is corrupt) is read again one
message at a time, so each message gets its own record or its own error. cavro reports
neither how far a read went nor trailing bytes, hence the checks: written by hand because
no Avro library reads a batch of framed messages at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cavro
import numpy as np

from edml.errors import DecodeError

__all__ = ["RAW_OPTIONS", "RawDecoder", "encoded_sizes"]

# records as dicts, logical types as their Avro values
RAW_OPTIONS = cavro.DEFAULT_OPTIONS.replace(record_decodes_to_dict=True, logical_types=())
# read after a record: raises EOFError where the record ended at the message's end
_ONE_MORE_BYTE = cavro.Schema('{"type": "fixed", "name": "edml.Probe", "size": 1}',
                              options=RAW_OPTIONS)
_SENTINEL = os.urandom(8)  # per process: no message can be made to forge it
_PRIMITIVE_SIZES = {"null": 0, "boolean": 1, "float": 4, "double": 8}
_VARINT_STEPS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)

Sizes = Callable[[Sequence[Any]], np.ndarray]


def _varint_sizes(values: np.ndarray) -> np.ndarray:
    """Bytes of each value's zig-zag varint."""
    n = values.astype(np.int64)
    zigzag = ((n << 1) ^ (n >> 63)).view(np.uint64)
    sizes: np.ndarray = 1 + (zigzag[:, None] >= _VARINT_STEPS).sum(axis=1)
    return sizes


def _type_sizes(avro_type: Any) -> Sizes | None:
    """How to size a column of values of ``avro_type``; None for a type not handled."""
    if isinstance(avro_type, dict):
        if avro_type.get("type") == "fixed":
            size = int(avro_type["size"])
            return lambda values: np.full(len(values), size, dtype=np.int64)
        avro_type = avro_type.get("type")  # a primitive with a logical type
    if isinstance(avro_type, list) and len(avro_type) == 2 and "null" in avro_type:
        other = _type_sizes(avro_type[1 - avro_type.index("null")])
        if other is None:
            return None
        branch = other

        def nullable(values: Sequence[Any]) -> np.ndarray:
            present = np.fromiter((v is not None for v in values), bool, len(values))
            sizes = np.ones(len(values), dtype=np.int64)  # the branch index: one byte
            if present.any():
                sizes[present] += branch([v for v in values if v is not None])
            return sizes
        return nullable
    if not isinstance(avro_type, str):
        return None
    if avro_type in _PRIMITIVE_SIZES:
        constant = _PRIMITIVE_SIZES[avro_type]
        return lambda values: np.full(len(values), constant, dtype=np.int64)
    if avro_type in ("int", "long"):
        return lambda values: _varint_sizes(np.array(values, dtype=np.int64))
    if avro_type in ("string", "bytes"):
        def sizes(values: Sequence[Any]) -> np.ndarray:
            lengths = np.fromiter((len(v.encode() if avro_type == "string" else v)
                                   for v in values), np.int64, len(values))
            total: np.ndarray = _varint_sizes(lengths) + lengths
            return total
        return sizes
    return None


def encoded_sizes(schema: dict[str, Any]) -> Callable[[Sequence[dict[str, Any]]], np.ndarray
                                                   ] | None:
    """The function giving the bytes each of a column of records takes in Avro binary
    (minimal varints, as every writer writes them), or None for a schema with a field it
    cannot size (nested records, arrays, maps, enums, unions beyond null | T)."""
    fields = []
    for field in schema["fields"]:
        sizes = _type_sizes(field["type"])
        if sizes is None:
            return None
        fields.append((field["name"], sizes))

    def total(records: Sequence[dict[str, Any]]) -> np.ndarray:
        out = np.zeros(len(records), dtype=np.int64)
        for name, sizes in fields:
            out += sizes([record[name] for record in records])
        return out
    return total


@dataclass(frozen=True, slots=True)
class RawDecoder:
    """One writer schema's messages read as one reader schema, by cavro."""

    schema: Any  # cavro.Schema, or cavro.ResolvedSchema for another writer
    name: str
    offset: int  # the framing's bytes
    batch: Any = None  # cavro.Schema of {items: [reader], end: the sentinel}, if sizable
    sizes: Callable[[Sequence[dict[str, Any]]], np.ndarray] | None = None

    @classmethod
    def of(cls, reader_json: str, writer_json: str | None, name: str, offset: int
           ) -> RawDecoder:
        """The decoder of ``writer_json``'s messages (None: the reader's own) as
        ``reader_json``; a batch is read at once only where the writer is the reader, since
        the sizes are the writer's."""
        reader = cavro.Schema(reader_json, options=RAW_OPTIONS)
        if writer_json is not None:
            return cls(reader.reader_for_writer(cavro.Schema(writer_json,
                                                             options=RAW_OPTIONS)),
                       name, offset)
        parsed = json.loads(reader_json)
        sizes = encoded_sizes(parsed)
        if sizes is None:
            return cls(reader, name, offset)
        batch = cavro.Schema(json.dumps({
            "type": "record", "name": "edml.RawBatch", "fields": [
                {"name": "items", "type": {"type": "array", "items": parsed}},
                {"name": "end", "type": {"type": "fixed", "name": "edml.RawBatchEnd",
                                         "size": len(_SENTINEL)}}]}), options=RAW_OPTIONS)
        return cls(reader, name, offset, batch, sizes)

    def __call__(self, data: bytes) -> dict[str, Any]:
        reader = cavro.MemoryReader(memoryview(data)[self.offset:])
        try:
            record: dict[str, Any] = self.schema.binary_read(reader)
        except Exception as exc:  # EOFError, ValueError, UnicodeDecodeError on corrupt bodies
            raise DecodeError(f"corrupt {self.name} body: {type(exc).__name__}: {exc}"
                              ) from exc
        try:
            _ONE_MORE_BYTE.binary_read(reader)
        except EOFError:
            return record
        raise DecodeError(f"corrupt {self.name} body: trailing bytes after the record")

    def all_at_once(self, messages: Sequence[bytes]) -> list[dict[str, Any]] | None:
        """Every message's record, read in one call; None where the batch cannot be proved
        to have split at the messages' ends (then each must be read alone)."""
        if self.batch is None or self.sizes is None or not messages:
            return None
        offset = self.offset
        count = len(messages)
        # an Avro array: one block of ``count`` items, then the empty block that ends it
        block = b"".join([_zigzag(count), *(m[offset:] for m in messages), b"\x00",
                          _SENTINEL])
        try:
            read = self.batch.binary_decode(block)
        except Exception:  # a corrupt message among them
            return None
        records: list[dict[str, Any]] = read["items"]
        if read["end"] != _SENTINEL or len(records) != count:
            return None
        bodies = np.fromiter((len(m) - offset for m in messages), np.int64, count)
        if not np.array_equal(self.sizes(records), bodies):
            return None
        return records


def _zigzag(n: int) -> bytes:
    z, out = n << 1, bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)
