"""The Avro codecs the scoring hot path could use, on its own schemas and real requests.

    .venv/bin/python bench/codec.py [--seconds 10] [--rounds 2]

Decode: 1,000 framed ``TripRequest`` messages a batch, as the worker gets them, by
``Codec.decode_record`` (fastavro per message, datetimes built), fastavro's
``schemaless_reader`` per message on the bare body (no framing, logical types left as
longs), cavro per message (``decode_batch``'s way when a batch holds a corrupt message),
``Codec.decode_batch`` (cavro reading the batch in one call, with the checks that it split
at the messages' ends: the hot path's), and fastavro reading the same records as one
container block (no per-message checks: for reference). Encode: 1,000 ``TripPrediction``
messages by ``Codec.encode_record`` (fastavro), cavro's ``binary_encode``, the prediction
writer a record at a time, and its column-wise ``encode_many`` (the hot path's).
Changelog: a batch's 1,000 writes of the live-evaluation join store as one ``JoinChanges``
message, by fastavro, by cavro (the hot path's before), and by ``Codec.encode_join_changes``
(hand-written; a table laid out by numpy when the keys share a length): µs per change.

Each contender runs ``--seconds`` of steady work per round, rounds interleaved; the table
gives the median µs per message with the rounds' spread, and each against the first of
its kind. Not benchmarked: cerializer (compiles Cython at run time: a C compiler on every
machine that serves), Arrow (pyarrow reads no Avro).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cavro
import fastavro
import numpy as np

from bench.common import CODEC, requests, stamp
from edml.contracts import TripRequest

BATCH = 1000
_RAW = cavro.DEFAULT_OPTIONS.replace(record_decodes_to_dict=True, logical_types=())


def _decoders(messages: list[bytes]) -> dict[str, Callable[[], object]]:
    schema = CODEC.schemas[TripRequest.SCHEMA]
    raw = fastavro.parse_schema(json.loads(json.dumps(_without_logical_types(schema))))
    bodies = [m[10:] for m in messages]
    block = io.BytesIO()
    fastavro.writer(block, raw, [fastavro.schemaless_reader(io.BytesIO(b), raw, None)
                                 for b in bodies], codec="null")
    container = block.getvalue()
    CODEC.decode_batch(messages[:1], TripRequest.SCHEMA)
    decoder = next(iter(CODEC._raw_decoders.values()))  # what decode_batch built
    return {
        "Codec.decode_record (fastavro)": lambda: [
            CODEC.decode_record(m, TripRequest.SCHEMA) for m in messages],
        "fastavro schemaless_reader": lambda: [
            fastavro.schemaless_reader(io.BytesIO(b), raw, None) for b in bodies],
        "cavro per message": lambda: [decoder(m) for m in messages],
        "Codec.decode_batch (cavro)": lambda: CODEC.decode_batch(messages, TripRequest.SCHEMA),
        "fastavro one container block": lambda: list(fastavro.reader(io.BytesIO(container))),
    }


def _without_logical_types(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_logical_types(v) for k, v in node.items()
                if k != "logicalType" and not k.startswith("__")}
    if isinstance(node, list):
        return [_without_logical_types(v) for v in node]
    return node


def _encoders() -> dict[str, Callable[[], object]]:
    rng = np.random.default_rng(1)
    trip_ids = [f"t{i}" for i in range(BATCH)]
    seconds = rng.uniform(60, 3600, BATCH)
    requested = 1_764_000_000_000 + rng.integers(0, 100_000, BATCH)
    predicted = 1_764_000_100_000
    rows = list(zip(trip_ids, seconds.tolist(), requested.tolist(), strict=True))
    schema = cavro.Schema(json.dumps(_without_logical_types(
        CODEC.schemas["edml.TripPrediction"])), options=_RAW)
    header = CODEC.encode_record("edml.TripPrediction", {
        "trip_id": "", "predicted_duration_seconds": 0.0, "model_name": "", "model_version": "",
        "requested_at": 0, "predicted_at": 0})[:10]

    def fastavro_each() -> object:
        return [CODEC.encode_record("edml.TripPrediction", {
            "trip_id": t, "predicted_duration_seconds": s, "model_name": "bench",
            "model_version": "v1", "requested_at": r, "predicted_at": predicted})
            for t, s, r in rows]

    def cavro_each() -> object:
        return [header + schema.binary_encode({
            "trip_id": t, "predicted_duration_seconds": s, "model_name": "bench",
            "model_version": "v1", "requested_at": r, "predicted_at": predicted})
            for t, s, r in rows]

    def writer_each() -> object:
        write = CODEC.prediction_writer("bench", predicted).encode
        return [write(t, "v1", s, r) for t, s, r in rows]

    def writer_columns() -> object:
        return CODEC.prediction_writer("bench", predicted).encode_many(
            trip_ids, "v1", seconds, requested)

    return {"Codec.encode_record (fastavro)": fastavro_each, "cavro binary_encode": cavro_each,
            "prediction writer, per record": writer_each,
            "prediction writer, encode_many": writer_columns}


def _changelog() -> dict[str, Callable[[], object]]:
    """A batch's writes of the join store as one ``JoinChanges`` message: the keys of
    trip ids of one form (UUIDs) and one model's packed predictions, as the worker logs."""
    rng = np.random.default_rng(2)
    keys = [b"p:" + bytes(rng.integers(97, 123, 36, dtype=np.uint8)) for _ in range(BATCH)]
    values = [b"\x01\x02\x00v1" + bytes(rng.integers(0, 256, 8, dtype=np.uint8))
              for _ in range(BATCH)]
    mixed = [key[:2 + i % 30] for i, key in enumerate(keys)]  # ids of many lengths


    def records() -> list[dict[str, bytes]]:
        return [{"key": key, "value": value} for key, value in zip(keys, values, strict=True)]

    return {
        "JoinChanges, fastavro": lambda: CODEC.encode_record(
            "edml.JoinChanges", {"changes": records()}),
        "JoinChanges, cavro": lambda: CODEC.encode_raw(
            "edml.JoinChanges", {"changes": records()}),
        "by hand, ids of many lengths": lambda: CODEC.encode_join_changes(mixed, values),
        "by hand, ids of one length": lambda: CODEC.encode_join_changes(keys, values),
    }


def _round(work: Callable[[], object], seconds: float) -> float:
    """µs per message over ``seconds`` of calls, each call a batch of BATCH."""
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        work()
        calls += 1
    return elapsed / (calls * BATCH) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="steady work per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per contender (>= 2)")
    args = parser.parse_args()
    if args.rounds < 2 or args.seconds < 10:
        parser.error("at least 2 rounds of at least 10 s each: a shorter run is not a figure")
    groups = {"decode": _decoders(requests(BATCH)), "encode": _encoders(),
              "changelog": _changelog()}
    for contenders in groups.values():
        for work in contenders.values():
            work()  # warm: imports, schema caches
    us: dict[str, list[float]] = {name: [] for c in groups.values() for name in c}
    for r in range(args.rounds):
        for contenders in groups.values():
            for name, work in contenders.items():
                us[name].append(_round(work, args.seconds))
                print(f"{stamp()} round {r + 1} {name:<32} {us[name][-1]:6.2f} µs/message",
                      flush=True)
    for kind, contenders in groups.items():
        print(f"\n{kind} (µs per message: median, rounds' range; against the first)")
        first = statistics.median(us[next(iter(contenders))])
        for name in contenders:
            median = statistics.median(us[name])
            print(f"  {name:<32} {median:6.2f}  ({min(us[name]):.2f} .. {max(us[name]):.2f})"
                  f"  {first / median:5.2f}x")


if __name__ == "__main__":
    main()
