"""Avro encoding of the contracts, framed so that every message says which schema wrote it.

Two framings, both read whatever the writer was configured with:

* Avro single-object encoding (the default): ``C3 01`` + the 8-byte little-endian
  CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form + the body.
* Confluent wire format (when a schema registry is configured): ``00`` + the 4-byte
  big-endian schema id + the body. Subjects follow the record-name strategy
  (``edml.TripRequest``), since one schema may travel on several topics.

A reader resolves the writer schema (by fingerprint from the schemas it knows, or by id from
the registry) against its own, so a reader of an older schema reads a newer writer's message
as long as the evolution rules in ``avro/README.md`` are kept.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol, TypeVar, cast

import cavro
import fastavro
import numpy as np
from fastavro.schema import to_parsing_canonical_form

from edml.contracts import Record
from edml.errors import DecodeError, EncodeError
from edml.raw_decode import RAW_OPTIONS, RawDecoder
from edml.settings import RegistrySettings

__all__ = [
    "Codec",
    "PredictionWriter",
    "SchemaRegistry",
    "crc64_avro",
    "load_history",
    "load_schemas",
]

R = TypeVar("R", bound=Record)

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
_SINGLE_OBJECT_HEADER = 10  # bytes: 2 magic + 8 fingerprint
_CONFLUENT_HEADER = 5  # bytes: 1 magic + 4 schema id

_CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_CRC64_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """The Avro spec's 64-bit Rabin fingerprint (CRC-64-AVRO)."""
    fp = _CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


def _parse(schema: Any, named: dict[str, Any] | None = None) -> dict[str, Any]:
    """fastavro's parse, typed: edml's schemas are all records, so the result is a dict."""
    parsed = fastavro.parse_schema(schema, named_schemas=named)
    if not isinstance(parsed, dict):
        raise EncodeError(f"not a record schema: {schema!r:.200}")
    return parsed


def _fingerprint(schema: dict[str, Any]) -> bytes:
    """The 8 fingerprint bytes of single-object encoding (little-endian CRC-64-AVRO)."""
    return struct.pack("<Q", crc64_avro(to_parsing_canonical_form(schema).encode()))


def _schema_json(schema: Any) -> str:
    """The full schema as JSON, logical types and docs kept (unlike the canonical form)."""

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: clean(v) for k, v in node.items() if not k.startswith("__")}
        if isinstance(node, list):
            return [clean(v) for v in node]
        return node

    return json.dumps(clean(schema))


class SchemaRegistry(Protocol):
    """The two calls of a Confluent-compatible schema registry that the codec needs."""

    def register(self, subject: str, schema: str) -> int: ...

    def schema(self, schema_id: int) -> str: ...


def load_schemas() -> dict[str, dict[str, Any]]:
    """Every ``avro/*.avsc``, parsed by fastavro, by full name (``edml.TripRequest``)."""
    named: dict[str, Any] = {}
    parsed: dict[str, dict[str, Any]] = {}
    for entry in sorted(resources.files("edml.schemas").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".avsc"):
            schema = _parse(json.loads(entry.read_text()), named)
            parsed[schema["name"]] = schema
    return parsed


def load_history() -> list[dict[str, Any]]:
    """Earlier versions of the schemas (``avro/history/*.avsc``): known writers."""
    history = resources.files("edml.schemas").joinpath("history")
    if not history.is_dir():
        return []
    return [
        _parse(json.loads(entry.read_text()))
        for entry in sorted(history.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".avsc")
    ]


_PREDICTION_LAYOUT = [("trip_id", "string"), ("predicted_duration_seconds", "double"),
                      ("model_name", "string"), ("model_version", "string"),
                      ("requested_at", "long"), ("predicted_at", "long"),
                      ("model_key", "union"), ("fallback", "boolean")]


# The schemas written by hand below, as their canonical forms' fingerprints: a changed
# schema is written by cavro until its hand-written encoder follows.
_BY_HAND = {
    "edml.JoinChanges": _fingerprint(_parse({
        "type": "record", "name": "JoinChanges", "namespace": "edml", "fields": [
            {"name": "changes", "type": {"type": "array", "items": {
                "type": "record", "name": "JoinChange", "fields": [
                    {"name": "key", "type": "bytes"},
                    {"name": "value", "type": ["null", "bytes"]}]}}}]})),
    "edml.ShadowPredictions": _fingerprint(_parse({
        "type": "record", "name": "ShadowPredictions", "namespace": "edml", "fields": [
            {"name": "model_name", "type": "string"},
            {"name": "model_version", "type": "string"},
            {"name": "predicted_at", "type": "long"},
            {"name": "trip_ids", "type": {"type": "array", "items": "string"}},
            {"name": "predicted_duration_seconds", "type": {"type": "array", "items": "double"}},
            {"name": "requested_at", "type": {"type": "array", "items": "long"}},
            {"name": "model_key", "type": ["null", "string"]}]})),
}

_SMALL_LONGS = [bytes([(n << 1) ^ (n >> 63)]) for n in range(64)]  # 0..63: one byte


def _avro_long(n: int) -> bytes:
    """Avro's zig-zag varint."""
    if 0 <= n < 64:
        return _SMALL_LONGS[n]
    n = (n << 1) ^ (n >> 63)
    if 1 << 35 <= n < 1 << 42:  # a millisecond timestamp of 1971..2039: six bytes, unrolled
        return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14 & 0x7F | 0x80,
                      n >> 21 & 0x7F | 0x80, n >> 28 & 0x7F | 0x80, n >> 35))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _avro_bytes(data: bytes) -> bytes:
    return _avro_long(len(data)) + data


def _avro_string(text: str) -> bytes:
    return _avro_bytes(text.encode())


_ARRAY_END = b"\x00"  # an array is blocks of (count, items) ended by an empty block


def _array_head(count: int) -> bytes:
    """The count of an array written as one block (nothing where it is empty)."""
    return _avro_long(count) if count else b""


def _table(rows: int, fields: Sequence[bytes | Sequence[bytes]]) -> bytes:
    """``rows`` rows of fixed-width fields laid out by numpy, one after the other: each
    field a constant (bytes) or a column of one item a row, all of one length."""
    widths = [len(f) if isinstance(f, bytes) else len(f[0]) for f in fields]
    table = np.empty((rows, sum(widths)), dtype=np.uint8)
    start = 0
    for f, width in zip(fields, widths, strict=True):
        table[:, start:start + width] = np.frombuffer(f, np.uint8) if isinstance(f, bytes) \
            else np.frombuffer(b"".join(f), np.uint8).reshape(rows, width)
        start += width
    return table.tobytes()


def _one_length(items: Sequence[bytes]) -> int | None:
    """The length every item has, where it fits Avro's one-byte length (< 64)."""
    lengths = set(map(len, items))
    return lengths.pop() if len(lengths) == 1 and max(lengths) < 64 else None


def _bytes_column(items: Sequence[bytes]) -> bytes:
    """Each of ``items`` as Avro bytes (or a string's UTF-8), one after the other."""
    if (length := _one_length(items)) is not None:
        return _table(len(items), [_SMALL_LONGS[length], items])
    return b"".join([_avro_bytes(item) for item in items])


def _join_changes(keys: Sequence[bytes], values: Sequence[bytes | None]) -> bytes:
    """The items of a ``JoinChanges`` array: each key as Avro bytes, then the value's union
    branch (0 null, 1 bytes) and the value."""
    if keys and None not in values:
        stored = cast(Sequence[bytes], values)
        key_length, value_length = _one_length(keys), _one_length(stored)
        if key_length is not None and value_length is not None:
            return _table(len(keys), [_SMALL_LONGS[key_length], keys, b"\x02",
                                      _SMALL_LONGS[value_length], stored])
    small = _SMALL_LONGS
    return b"".join([small[len(key)] + key + (b"\x00" if value is None else
                                              b"\x02" + small[len(value)] + value)
                     if len(key) < 64 and (value is None or len(value) < 64) else
                     _avro_bytes(key) + (b"\x00" if value is None else
                                         b"\x02" + _avro_bytes(value))
                     for key, value in zip(keys, values, strict=True)])


def _varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Avro's zig-zag varint of each value, computed for the whole column at once: a row of
    10 bytes per value, and how many of them it uses."""
    n = values.astype(np.int64)
    zigzag = ((n << 1) ^ (n >> 63)).view(np.uint64)
    groups = np.stack([(zigzag >> np.uint64(7 * i)) & np.uint64(0x7F) for i in range(10)],
                      axis=1).astype(np.uint8)  # 7 bits each, least significant first
    width = np.maximum(1, 10 - np.argmax(groups[:, ::-1] != 0, axis=1))
    width[~groups.any(axis=1)] = 1
    groups[np.arange(10) < (width - 1)[:, None]] |= 0x80  # more to come
    return groups, width


def _avro_longs(values: np.ndarray) -> list[bytes]:
    """Each value as an Avro long, apart."""
    groups, width = _varints(values)
    rows = groups.tobytes()
    return [rows[10 * i:10 * i + w] for i, w in enumerate(width.tolist())]


def _long_column(values: np.ndarray) -> bytes:
    """The values as Avro longs, one after the other (an array's items)."""
    groups, width = _varints(values)
    return groups[np.arange(10) < width[:, None]].tobytes()  # row by row, the used bytes


class PredictionWriter(Protocol):
    """Encodes one batch's main-topic predictions of one model (any of its versions)."""

    def encode(self, trip_id: str, version: str, seconds: float, requested_ms: int,
               model_key: str | None = None, fallback: bool = False) -> bytes: ...

    def encode_many(self, trip_ids: Sequence[str], version: str, seconds: np.ndarray,
                    requested_ms: np.ndarray, model_key: str | None = None,
                    fallback: bool = False) -> list[bytes]:
        """The predictions of one version (of one keyed model), a column each."""
        ...


def _key_and_fallback(model_key: str | None, fallback: bool) -> bytes:
    """The two last fields: the union's branch (0 null, 1 string) and the boolean."""
    key = b"\x00" if model_key is None else b"\x02" + _avro_string(model_key)
    return key + (b"\x01" if fallback else b"\x00")


class _FastPredictionWriter:
    """Written by hand because fastavro's per-call overhead (~5 us for these eight fields)
    was the largest cost of scoring a record: the layout is fixed by the schema (checked
    by the caller field by field) and a test proves the bytes equal to fastavro's."""

    _pack_double = struct.Struct("<d").pack

    def __init__(self, header: bytes, model_name: str, predicted_ms: int) -> None:
        self._header, self._name = header, _avro_string(model_name)
        self._predicted = _avro_long(predicted_ms)
        self._models: dict[str, bytes] = {}

    def encode(self, trip_id: str, version: str, seconds: float, requested_ms: int,
               model_key: str | None = None, fallback: bool = False) -> bytes:
        model = self._models.get(version)
        if model is None:
            model = self._models[version] = self._name + _avro_string(version)
        return b"".join((self._header, _avro_string(trip_id), self._pack_double(seconds),
                         model, _avro_long(requested_ms), self._predicted,
                         _key_and_fallback(model_key, fallback)))

    def encode_many(self, trip_ids: Sequence[str], version: str, seconds: np.ndarray,
                    requested_ms: np.ndarray, model_key: str | None = None,
                    fallback: bool = False) -> list[bytes]:
        # the numbers of the whole batch encoded by numpy; the strings one by one
        model = self._name + _avro_string(version)
        doubles = np.ascontiguousarray(seconds, dtype="<f8").tobytes()
        head, tail = self._header, self._predicted + _key_and_fallback(model_key, fallback)
        return [b"".join((head, _avro_string(trip_id), doubles[8 * i:8 * i + 8], model,
                          requested, tail))
                for i, (trip_id, requested) in enumerate(zip(trip_ids,
                                                             _avro_longs(requested_ms),
                                                             strict=True))]


class _GenericPredictionWriter:
    def __init__(self, codec: Codec, model_name: str, predicted_ms: int) -> None:
        self._codec, self._name, self._predicted = codec, model_name, predicted_ms

    def encode(self, trip_id: str, version: str, seconds: float, requested_ms: int,
               model_key: str | None = None, fallback: bool = False) -> bytes:
        return self._codec.encode_record("edml.TripPrediction", {
            "trip_id": trip_id, "predicted_duration_seconds": seconds,
            "model_name": self._name, "model_version": version,
            "requested_at": requested_ms, "predicted_at": self._predicted,
            "model_key": model_key, "fallback": fallback})

    def encode_many(self, trip_ids: Sequence[str], version: str, seconds: np.ndarray,
                    requested_ms: np.ndarray, model_key: str | None = None,
                    fallback: bool = False) -> list[bytes]:
        return [self.encode(trip_id, version, s, r, model_key, fallback) for trip_id, s, r
                in zip(trip_ids, seconds.tolist(), requested_ms.tolist(), strict=True)]


@dataclass(frozen=True, slots=True)
class _Writer:
    name: str
    schema: dict[str, Any]
    header: bytes


class Codec:
    """Encodes contract records and decodes framed messages back into them.

    ``registry=None`` writes single-object encoding; with a registry, the Confluent framing.
    """

    def __init__(
        self,
        schemas: Mapping[str, dict[str, Any]] | None = None,
        registry: SchemaRegistry | None = None,
    ) -> None:
        self._readers = dict(schemas if schemas is not None else load_schemas())
        self._registry = registry
        self._writers: dict[str, _Writer] = {}
        self._by_fingerprint: dict[bytes, dict[str, Any]] = {}
        self._by_id: dict[int, dict[str, Any]] = {}
        self._raw_decoders: dict[tuple[bytes, str], RawDecoder] = {}
        self._raw_encoders: dict[str, Any] = {}  # cavro schemas by name
        self._hand_written: dict[str, bool] = {}  # by schema name: see ``_by_hand``
        for schema in self._readers.values():
            self._by_fingerprint[_fingerprint(schema)] = schema
        if schemas is None:
            for old in load_history():
                self.add_writer_schema(old)

    @property
    def schemas(self) -> Mapping[str, dict[str, Any]]:
        return self._readers

    @classmethod
    def from_settings(cls, settings: RegistrySettings) -> Codec:
        """Single-object encoding, or the Confluent framing when a registry URL is set."""
        if settings.url is None:
            return cls()
        from edml.registry import ConfluentRegistry

        return cls(registry=ConfluentRegistry(settings))

    def add_writer_schema(self, schema: dict[str, Any] | str) -> bytes:
        """Make a writer schema known by fingerprint (for single-object messages) and return it.

        Readers know their own schemas; a newer writer's schema reaches them through the
        registry, or through this call where no registry is used.
        """
        parsed = _parse(json.loads(schema) if isinstance(schema, str) else schema)
        fingerprint = _fingerprint(parsed)
        self._by_fingerprint[fingerprint] = parsed
        return fingerprint

    # -- encode ---------------------------------------------------------------------------

    def _writer(self, name: str) -> _Writer:
        writer = self._writers.get(name)
        if writer is None:
            try:
                schema = self._readers[name]
            except KeyError:
                raise EncodeError(f"no schema named {name} in avro/") from None
            if self._registry is None:
                header = SINGLE_OBJECT_MAGIC + _fingerprint(schema)
            else:
                schema_id = self._registry.register(name, _schema_json(schema))
                self._by_id[schema_id] = schema
                header = CONFLUENT_MAGIC + struct.pack(">I", schema_id)
            writer = self._writers[name] = _Writer(name, schema, header)
        return writer

    def encode_record(self, name: str, record: Mapping[str, Any]) -> bytes:
        writer = self._writer(name)
        buf = io.BytesIO()
        buf.write(writer.header)
        try:
            fastavro.schemaless_writer(buf, writer.schema, record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise EncodeError(f"{name}: {exc}") from exc
        return buf.getvalue()

    def encode_raw(self, name: str, record: Mapping[str, Any]) -> bytes:
        """``record`` encoded as ``encode_record`` does, by cavro, logical types given as
        their Avro values: for the hot path's big records (a batch's changes), where it
        costs a third of fastavro's."""
        writer = self._writer(name)
        schema = self._raw_encoders.get(name)
        if schema is None:
            schema = self._raw_encoders[name] = self._raw_schema(writer.schema)
        try:
            body: bytes = schema.binary_encode(record)
        except Exception as exc:  # cavro's value errors share no base class
            raise EncodeError(f"{name}: {exc}") from exc
        return writer.header + body

    def encode(self, record: Record) -> bytes:
        return self.encode_record(record.SCHEMA, record.to_avro())

    def _by_hand(self, name: str) -> _Writer | None:
        """``name``'s writer where its schema is the one its hand-written encoder writes."""
        writer = self._writer(name)
        by_hand = self._hand_written.get(name)
        if by_hand is None:
            by_hand = self._hand_written[name] = _fingerprint(writer.schema) == _BY_HAND[name]
        return writer if by_hand else None

    def encode_join_changes(self, keys: Sequence[bytes], values: Sequence[bytes | None]
                            ) -> bytes:
        """One ``edml.JoinChanges`` message of the writes ``keys[i]`` = ``values[i]``
        (None: a delete). Written by hand: the live evaluation logs a change for every
        prediction, and cavro's dict per change cost 0.75 us where this costs 0.2, or 0.05
        for a column of keys and of values of one length each (trip ids of one form, one
        model's predictions); a test proves the bytes equal to fastavro's."""
        writer = self._by_hand("edml.JoinChanges")
        if writer is None:
            return self.encode_raw("edml.JoinChanges", {"changes": [
                {"key": key, "value": value} for key, value in zip(keys, values, strict=True)]})
        return b"".join((writer.header, _array_head(len(keys)), _join_changes(keys, values),
                         _ARRAY_END))

    def encode_shadow_predictions(self, model_name: str, model_version: str,
                                  predicted_ms: int, trip_ids: Sequence[str],
                                  seconds: np.ndarray, requested_ms: np.ndarray,
                                  model_key: str | None = None) -> bytes:
        """One ``edml.ShadowPredictions`` message: a version's predictions of a batch's
        trips as columns. Written by hand: cavro's lists cost 0.44 us a trip, which was a
        sixth of what a shadow candidate adds to a batch; a test proves the bytes equal to
        fastavro's."""
        writer = self._by_hand("edml.ShadowPredictions")
        if writer is None:
            return self.encode_raw("edml.ShadowPredictions", {
                "model_name": model_name, "model_version": model_version,
                "predicted_at": predicted_ms, "trip_ids": list(trip_ids),
                "predicted_duration_seconds": seconds.tolist(),
                "requested_at": requested_ms.tolist(), "model_key": model_key})
        head = _array_head(len(trip_ids))
        return b"".join((
            writer.header, _avro_string(model_name), _avro_string(model_version),
            _avro_long(predicted_ms),
            head, _bytes_column([trip_id.encode() for trip_id in trip_ids]), _ARRAY_END,
            head, np.ascontiguousarray(seconds, dtype="<f8").tobytes(), _ARRAY_END,
            head, _long_column(requested_ms), _ARRAY_END,
            b"\x00" if model_key is None else b"\x02" + _avro_string(model_key)))

    def prediction_writer(self, model_name: str, predicted_ms: int) -> PredictionWriter:
        """The encoder of ``edml.TripPrediction`` for one model and one ``predicted_at`` (a
        batch's): the scoring hot path writes one per trip."""
        writer = self._writer("edml.TripPrediction")
        fields = [(f["name"], f["type"] if isinstance(f["type"], str) else "union"
                   if f["type"] == ["null", "string"] else f["type"].get("type"))
                  for f in writer.schema["fields"]]
        if fields != _PREDICTION_LAYOUT:  # a changed schema: correct first, fast later
            return _GenericPredictionWriter(self, model_name, predicted_ms)
        return _FastPredictionWriter(writer.header, model_name, predicted_ms)

    # -- decode ---------------------------------------------------------------------------

    def _writer_schema(self, data: bytes) -> tuple[dict[str, Any], int]:
        if data[:2] == SINGLE_OBJECT_MAGIC and len(data) >= _SINGLE_OBJECT_HEADER:
            fingerprint = data[2:_SINGLE_OBJECT_HEADER]
            schema = self._by_fingerprint.get(fingerprint)
            if schema is None:
                raise DecodeError(
                    f"unknown writer schema (fingerprint {fingerprint[::-1].hex()}): a newer "
                    "writer? Configure a schema registry or deploy the newer schema to readers"
                )
            return schema, _SINGLE_OBJECT_HEADER
        if data[:1] == CONFLUENT_MAGIC and len(data) >= _CONFLUENT_HEADER:
            (schema_id,) = struct.unpack(">I", data[1:_CONFLUENT_HEADER])
            return self._registry_schema(schema_id), _CONFLUENT_HEADER
        raise DecodeError(
            f"not an edml Avro message: header {data[:_SINGLE_OBJECT_HEADER].hex() or 'empty'}"
            " is neither single-object encoding (c301...) nor Confluent framing (00...)"
        )

    def _registry_schema(self, schema_id: int) -> dict[str, Any]:
        schema = self._by_id.get(schema_id)
        if schema is None:
            if self._registry is None:
                raise DecodeError(
                    f"message framed for a schema registry (schema id {schema_id}) "
                    "but no registry is configured"
                )
            # DecodeError for an unknown id; RegistryUnavailable (the registry's failure, not
            # the message's) passes through: the caller waits, no record is blamed
            text = self._registry.schema(schema_id)
            schema = self._by_id[schema_id] = _parse(json.loads(text))
        return schema

    def schema_name(self, data: bytes) -> str:
        """The full name of the record ``data`` holds (a topic may carry several kinds,
        as the evaluations topic does); DecodeError when the framing names none known."""
        writer, _ = self._writer_schema(bytes(data))
        return str(writer["name"])

    def decode_record(self, data: bytes, name: str) -> dict[str, Any]:
        """The record in ``data`` as ``name``'s reader schema sees it."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError(f"expected bytes for {name}, got {type(data).__name__}")
        try:
            reader = self._readers[name]
        except KeyError:
            raise DecodeError(f"no schema named {name} in avro/") from None
        writer, offset = self._writer_schema(bytes(data))
        if writer["name"] != name:
            raise DecodeError(f"expected a {name} message, got {writer['name']}")
        buf = io.BytesIO(data)
        buf.seek(offset)
        try:
            record = fastavro.schemaless_reader(
                buf, writer, None if writer is reader else reader
            )
        except Exception as exc:  # fastavro raises many types on corrupt bodies
            raise DecodeError(f"corrupt {name} body: {type(exc).__name__}: {exc}") from exc
        if buf.tell() != len(data):
            raise DecodeError(f"corrupt {name} body: {len(data) - buf.tell()} trailing bytes")
        return record  # type: ignore[return-value]

    def decode_batch(self, messages: Sequence[bytes], name: str
                     ) -> list[dict[str, Any] | DecodeError]:
        """Each message's record as ``name``'s reader schema sees it, or the DecodeError
        that says why it has none; logical types left as their Avro values (a timestamp as
        its long). The scoring hot path's decode: a batch of one writer is read in one call
        (``edml.raw_decode``), else a message at a time, each at a quarter of
        ``decode_record``'s cost (bench/codec.py). A registry that cannot be reached
        raises: that is no message's fault."""
        if name not in self._readers:
            raise DecodeError(f"no schema named {name} in avro/")
        if messages and isinstance(messages[0], bytes):
            header = self._header(messages[0])
            try:
                decoder: RawDecoder | None = self._raw_decoders.get((header, name)) or \
                    self._raw_decoder(messages[0], name)
            except DecodeError:
                decoder = None  # the first message's own error: found one at a time below
            if decoder is not None and all(type(m) is bytes and m.startswith(header)
                                           for m in messages):
                records = decoder.all_at_once(messages)
                if records is not None:
                    return list(records)
        out: list[dict[str, Any] | DecodeError] = []
        for data in messages:
            try:
                if not isinstance(data, bytes):
                    raise DecodeError(f"expected bytes for {name}, got {type(data).__name__}")
                decoder = self._raw_decoders.get((self._header(data), name)) or \
                    self._raw_decoder(data, name)
                out.append(decoder(data))
            except DecodeError as exc:
                out.append(exc)
        return out

    @staticmethod
    def _header(data: bytes) -> bytes:
        """The framing's header: it names the writer, by fingerprint or by schema id."""
        return data[:_SINGLE_OBJECT_HEADER if data[:2] == SINGLE_OBJECT_MAGIC
                    else _CONFLUENT_HEADER]

    def _raw_decoder(self, data: bytes, name: str) -> RawDecoder:
        writer, offset = self._writer_schema(data)
        if writer["name"] != name:
            raise DecodeError(f"expected a {name} message, got {writer['name']}")
        reader = self._readers[name]
        try:
            decoder = RawDecoder.of(_schema_json(reader), None if writer is reader
                                    else _schema_json(writer), name, offset)
        except Exception as exc:  # cavro's resolution errors share no base class
            raise DecodeError(f"{name}: the writer's schema cannot be read as ours: {exc}"
                              ) from exc
        self._raw_decoders[(data[:offset], name)] = decoder
        return decoder

    @staticmethod
    def _raw_schema(schema: dict[str, Any]) -> Any:
        return cavro.Schema(_schema_json(schema), options=RAW_OPTIONS)

    def decode(self, data: bytes, cls: type[R]) -> R:
        return cls.from_avro(self.decode_record(data, cls.SCHEMA))

    def decode_if(self, data: bytes, cls: type[R]) -> R | None:
        """``data`` as ``cls`` if it holds one, None if it holds another record (a topic
        may carry several kinds: the evaluations topic does)."""
        return self.decode(data, cls) if self.schema_name(data) == cls.SCHEMA else None

    def decode_many(self, messages: Iterable[bytes], cls: type[R]) -> list[R]:
        return [self.decode(data, cls) for data in messages]
