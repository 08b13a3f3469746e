"""One micro-batch of trip requests in, its outcomes out: a prediction or a dead letter for
every record. Plain code, no Kafka and no faust: the scoring loop calls it per batch."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np

from edml.codec import Codec
from edml.contracts import DeadLetter, TripPrediction, TripRequest
from edml.errors import ContractError, InvalidRecord, ModelError, UnfitModel
from edml.savedmodel import Predictor, check_answers, smoke_test

__all__ = ["BatchResult", "Message", "Outcome", "dead_letter", "dead_letter_key", "score_batch"]

# bytes of an offending record a dead letter carries: far below any broker's message limit
# (1 MB by default), far above any real request (~100 bytes)
MAX_KEPT_VALUE_BYTES = 64 * 1024
MAX_KEPT_KEY_BYTES = 1024

_ZONES = (1, 263)  # TLC zone ids; 264 and 265 are its "unknown", never seen in training
_PASSENGERS = (0, 9)
# New York wall clock: the TLC's records begin in 2009; a pickup more than a day ahead of
# now is no trip being taken (and 1970 or 9999 are a client's bug, not a trip)
_FIRST_PICKUP = datetime(2009, 1, 1)
_AHEAD = timedelta(days=1)


class Message(Protocol):
    """What the batch needs of a Kafka message (confluent-kafka's Message has it)."""

    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def timestamp(self) -> tuple[int, int]: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    key: bytes | None
    value: bytes
    stage: str = ""  # for dead letters: where it failed
    kind: str = ""  # for dead letters: the error type
    source: str = ""  # for dead letters: topic[partition]@offset
    reason: str = ""  # for dead letters: the error message


@dataclass
class BatchResult:
    predictions: list[Outcome] = field(default_factory=list)
    dead_letters: list[Outcome] = field(default_factory=list)
    # (trip id, predicted seconds, source partition) for the live evaluation
    predicted: list[tuple[str, float, int]] = field(default_factory=list)
    request_times_ms: list[int] = field(default_factory=list)
    inference_seconds: float = 0.0


_EPOCH = datetime(1970, 1, 1)
_MILLISECOND = timedelta(milliseconds=1)


def _wall_clock_ms(value: datetime) -> int:
    # fastavro reads local-timestamp-millis as a naive datetime; back to its milliseconds
    return (value - _EPOCH) // _MILLISECOND


def _check(record: dict[str, Any], latest: datetime) -> None:
    for name, (low, high) in (("pickup_zone_id", _ZONES), ("dropoff_zone_id", _ZONES),
                              ("passenger_count", _PASSENGERS)):
        if not low <= record[name] <= high:
            raise InvalidRecord(f"{name} {record[name]} is outside {low}..{high}"
                                + (" (the TLC's unknown zone)" if record[name] in (264, 265)
                                   else ""))
    pickup: datetime = record["pickup_datetime"]
    if not _FIRST_PICKUP <= pickup <= latest:
        raise InvalidRecord(f"pickup_datetime {pickup:%Y-%m-%d %H:%M} is outside "
                            f"{_FIRST_PICKUP:%Y-%m-%d}..{latest:%Y-%m-%d %H:%M}")


def _predict_isolating(predictor: Predictor, columns: dict[str, np.ndarray], start: int,
                       stop: int) -> tuple[np.ndarray, dict[int, ModelError]]:
    """Predictions for rows ``start:stop``; a failing call is split in halves until each
    failure is pinned on the rows that fail alone (NaN there, and their errors)."""
    try:
        answers = predictor.predict({k: v[start:stop] for k, v in columns.items()})
        if answers.shape != (stop - start,):
            raise ModelError(f"{answers.size} answers for {stop - start} rows")
        return answers, {}
    except ModelError as exc:
        if stop - start == 1:
            return np.array([np.nan]), {start: exc}
        middle = (start + stop) // 2
        left, left_failed = _predict_isolating(predictor, columns, start, middle)
        right, right_failed = _predict_isolating(predictor, columns, middle, stop)
        return np.concatenate([left, right]), left_failed | right_failed


def dead_letter_key(key: bytes | None) -> bytes | None:
    """The dead letter's own Kafka key: the record's, cut to a size that always fits."""
    return key[:MAX_KEPT_KEY_BYTES] if key is not None else None


def dead_letter(codec: Codec, msg: Message, stage: str, exc: Exception, now_ms: int,
                model_name: str | None = None, model_version: str | None = None) -> bytes:
    """The encoded DeadLetter of ``msg``: its bytes, where it came from, and why. It always
    fits a broker's message size: a value over ``MAX_KEPT_VALUE_BYTES`` is cut to a prefix
    with its size and hash, a key over ``MAX_KEPT_KEY_BYTES`` to a prefix."""
    value, key = msg.value(), msg.key()
    size = sha256 = None
    if value is not None and len(value) > MAX_KEPT_VALUE_BYTES:
        size, sha256 = len(value), hashlib.sha256(value).hexdigest()
        value = value[:MAX_KEPT_VALUE_BYTES]
    return codec.encode_record(DeadLetter.SCHEMA, {
        "key": dead_letter_key(key), "value": value, "value_size": size,
        "value_sha256": sha256, "source_topic": msg.topic() or "",
        "source_partition": msg.partition() or 0, "source_offset": msg.offset() or 0,
        "stage": stage, "error_kind": type(exc).__name__, "error_message": str(exc)[:1000],
        "failed_at": now_ms, "model_name": model_name, "model_version": model_version,
    })


def _predict(predictor: Predictor, columns: dict[str, np.ndarray], rows: int,
             label: str) -> tuple[np.ndarray, dict[int, ModelError]]:
    try:
        answers = predictor.predict(columns)
        if answers.shape == (rows,):
            return answers, {}
        check_answers(answers, rows, label)  # raises: the wrong number of answers
    except ModelError as exc:
        failure = exc
    # The whole batch failed: the model or some records? The smoke requests tell.
    try:
        smoke_test(predictor, label)
    except ModelError as exc:
        raise UnfitModel(f"{label} failed on a batch of {rows} ({failure}) and on the smoke "
                         f"requests ({exc})") from exc
    return _predict_isolating(predictor, columns, 0, rows)


def score_batch(messages: Sequence[Message], predictor: Predictor, model_name: str,
                model_version: str, codec: Codec, now_ms: int,
                clock: Callable[[], float] = time.perf_counter) -> BatchResult:
    """Decode, check, score in one model call, encode. Expected per-record failures become
    dead letters: a record the model fails on alone is isolated by splitting the batch.
    A model that fails on the whole batch and on the smoke requests raises UnfitModel (no
    record is blamed); anything else propagates and stops the worker."""
    result = BatchResult()
    good: list[tuple[Message, dict[str, Any]]] = []
    latest = _EPOCH + now_ms * _MILLISECOND + _AHEAD  # UTC now is ahead of New York: lenient

    def dead(msg: Message, stage: str, exc: Exception) -> None:
        model = (model_name, model_version) if stage == "predict" else (None, None)
        letter = dead_letter(codec, msg, stage, exc, now_ms, *model)
        result.dead_letters.append(Outcome(
            dead_letter_key(msg.key()), letter, stage, type(exc).__name__,
            f"{msg.topic()}[{msg.partition()}]@{msg.offset()}", str(exc)[:200]))

    for msg in messages:
        try:
            record = codec.decode_record(msg.value() or b"", TripRequest.SCHEMA)
        except ContractError as exc:
            dead(msg, "decode", exc)
            continue
        try:
            _check(record, latest)
        except InvalidRecord as exc:
            dead(msg, "convert", exc)
            continue
        good.append((msg, record))
    if not good:
        return result

    columns = {
        "pickup_datetime": np.array([_wall_clock_ms(r["pickup_datetime"]) for _, r in good],
                                    dtype=np.int64),
        "pickup_zone_id": np.array([r["pickup_zone_id"] for _, r in good], dtype=np.int64),
        "dropoff_zone_id": np.array([r["dropoff_zone_id"] for _, r in good], dtype=np.int64),
        "passenger_count": np.array([r["passenger_count"] for _, r in good], dtype=np.int64),
    }
    started = clock()
    seconds, failed = _predict(predictor, columns, len(good), f"{model_name} {model_version}")
    result.inference_seconds = clock() - started

    for i, ((msg, record), predicted) in enumerate(zip(good, seconds.tolist(), strict=True)):
        if i in failed:
            dead(msg, "predict", failed[i])
            continue
        if not (predicted > 0 and np.isfinite(predicted)):
            dead(msg, "predict", InvalidRecord(f"the model predicted {predicted} seconds"))
            continue
        requested_ms = msg.timestamp()[1]
        value = codec.encode_record(TripPrediction.SCHEMA, {
            "trip_id": record["trip_id"], "predicted_duration_seconds": predicted,
            "model_name": model_name, "model_version": model_version,
            "requested_at": requested_ms, "predicted_at": now_ms,
        })
        result.predictions.append(Outcome(msg.key() or record["trip_id"].encode(), value))
        result.predicted.append((record["trip_id"], predicted, msg.partition() or 0))
        result.request_times_ms.append(requested_ms)
    return result
