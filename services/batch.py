"""One micro-batch of trip requests in, its outcomes out: a prediction or a dead letter for
every record. Plain code, no Kafka and no faust: the scoring loop calls it per batch."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

import numpy as np

from edml.codec import Codec
from edml.columns import input_columns
from edml.contracts import CANARY, DeadLetter, TripRequest
from edml.errors import DecodeError, InvalidRecord, ModelError, UnfitModel
from edml.profile import Profile
from edml.routing import route_keys, source_column
from edml.savedmodel import Predictor, check_answers, smoke_test, usable

__all__ = [
    "KEYED",
    "BatchResult",
    "Candidate",
    "Keyed",
    "KeyedAnswers",
    "KeyedPredictions",
    "KeyedRollout",
    "Message",
    "Outcome",
    "Predictions",
    "Routing",
    "answered_by_candidate",
    "dead_letter",
    "dead_letter_key",
    "score_batch",
]

# bytes of an offending record a dead letter carries: far below any broker's message limit
# (1 MB by default), far above any real request (~100 bytes)
MAX_KEPT_VALUE_BYTES = 64 * 1024
MAX_KEPT_KEY_BYTES = 1024

_ZONES = (1, 263)  # TLC zone ids; 264 and 265 are its "unknown", never seen in training
_PASSENGERS = (0, 9)
_CHECKED = ("pickup_zone_id", "dropoff_zone_id", "passenger_count", "pickup_datetime")
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


class Outcome(NamedTuple):  # a tuple: made twice per trip during a rollout, and cheap
    key: bytes | None
    value: bytes
    stage: str = ""  # for dead letters: where it failed
    kind: str = ""  # for dead letters: the error type
    source: str = ""  # for dead letters: topic[partition]@offset
    reason: str = ""  # for dead letters: the error message


@dataclass(frozen=True)
class Candidate:
    """A rollout's candidate, scored beside the champion on the same decoded rows."""

    predictor: Predictor
    version: str
    mode: str  # shadow or canary
    weight: float  # canary: the share of trips it answers


class Keyed(NamedTuple):
    """A keyed model as a batch calls it: its key's champion, and its key's rollout
    candidate scored beside it; ``profile``: what the drift monitors bin its traffic by."""

    predictor: Predictor
    version: str
    candidate: Candidate | None = None
    profile: Profile | None = None


class KeyedAnswers(NamedTuple):
    """What one key's model made of its trips in a batch, for the drift monitors:
    ``seconds`` (NaN where it failed) for the batch's checked rows ``rows``."""

    key: str
    version: str
    profile: Profile | None
    rows: np.ndarray
    seconds: np.ndarray


@dataclass(frozen=True)
class Routing:
    """A family routed by key: ``field`` gives each trip its key; ``models`` the loaded
    model of each asked key that has one (asking for the others has them loaded, off this
    path: their trips go to the fleet model meanwhile)."""

    field: str
    models: Callable[[list[str]], Mapping[str, Keyed]]


# The label of every keyed model's predictions in the metrics and the live evaluation: one
# series for the whole family's keyed models, however many keys (versions are per key).
KEYED = "per-key"


def answered_by_candidate(trip_id: str, candidate_version: str, weight: float) -> bool:
    """A stable draw per trip and rollout: the same trip always lands on the same side of
    the same rollout, on any worker, after any restart (Python's hash() is salted per
    process, so a real hash)."""
    digest = hashlib.blake2b(f"{candidate_version}\x00{trip_id}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") < weight * 2.0**64


@dataclass(frozen=True)
class KeyedPredictions:
    """What one key's models predicted of its trips in a batch: ``seconds[i, j]`` is what
    ``versions[j]`` (the key's champion, then its rollout's candidate) predicted for the
    trip at ``rows[i]`` of the batch's predictions (NaN: it made none)."""

    key: str
    rows: np.ndarray
    versions: tuple[str, ...]
    seconds: np.ndarray


@dataclass(frozen=True)
class Predictions:
    """A batch's predictions for the join, as columns: ``seconds[row, i]`` is what
    ``versions[i]`` predicted for ``trip_ids[row]`` (NaN: it made none), the champion
    first and a rollout's candidate beside it; ``partitions[row]`` is the trip's source
    partition. ``keyed``: what keyed models predicted, a key at a time."""

    trip_ids: list[str]
    versions: tuple[str, ...]
    seconds: np.ndarray
    partitions: np.ndarray
    keyed: tuple[KeyedPredictions, ...] = ()

    @classmethod
    def of(cls, versions: Sequence[str],
           rows: Sequence[tuple[str, Sequence[float], int]]) -> Predictions:
        """From rows of (trip id, [seconds per version], partition)."""
        return cls([trip_id for trip_id, _, _ in rows], tuple(versions),
                   np.array([seconds for _, seconds, _ in rows], dtype=np.float64
                            ).reshape(len(rows), len(versions)),
                   np.array([partition for _, _, partition in rows], dtype=np.int64))


@dataclass
class BatchResult:
    predictions: list[Outcome] = field(default_factory=list)  # the main topic's: one a trip
    shadow: list[Outcome] = field(default_factory=list)  # ShadowPredictions: one a version
    dead_letters: list[Outcome] = field(default_factory=list)
    # for the live evaluation: both versions' predictions of a trip during a rollout
    predicted: Predictions | None = None
    served_by: Counter[str] = field(default_factory=Counter)  # main-topic predictions
    shadowed_by: Counter[str] = field(default_factory=Counter)
    # per version that answered: when each of its trips was requested (end-to-end latency)
    request_times_ms: dict[str, np.ndarray] = field(default_factory=dict)
    inference_seconds: float = 0.0
    candidate_seconds: float = 0.0
    candidate_scored: int = 0  # rows the candidate was asked to score
    candidate_failures: int = 0
    candidate_unfit: UnfitModel | None = None  # failed on the batch and the smoke requests
    # the rows that decoded and checked, as the champion took them, and its answers (NaN
    # where it failed): what the drift monitors bin
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    champion_seconds: np.ndarray = field(default_factory=lambda: np.empty(0))
    keyed: int = 0  # main-topic predictions made by keyed models
    fallbacks: int = 0  # main-topic predictions of a routed family made by the fleet model
    keyed_unfit: dict[str, UnfitModel] = field(default_factory=dict)  # by key
    keyed_candidate_unfit: dict[str, UnfitModel] = field(default_factory=dict)  # by key
    keyed_rollouts: list[KeyedRollout] = field(default_factory=list)  # a key's candidate's
    # batch, for its rollout's evidence
    keyed_answers: list[KeyedAnswers] = field(default_factory=list)  # each key's model's


class KeyedRollout(NamedTuple):
    """One key's candidate's share of a batch: what the evidence counts of its health."""

    key: str
    champion: str
    candidate: str
    scored: int
    failures: int
    seconds: float


_EPOCH = datetime(1970, 1, 1)
_MILLISECOND = timedelta(milliseconds=1)
_FIRST_PICKUP_MS = (_FIRST_PICKUP - _EPOCH) // _MILLISECOND
_AHEAD_MS = _AHEAD // _MILLISECOND


def _wall_clock(ms: int) -> str:
    try:
        return f"{_EPOCH + ms * _MILLISECOND:%Y-%m-%d %H:%M}"
    except OverflowError:  # beyond Python's datetimes: the long says it all
        return f"{ms} ms"


def _invalid(columns: Mapping[str, np.ndarray], now_ms: int) -> dict[int, InvalidRecord]:
    """The rows that fail a check, with the first check each fails, run on the columns."""
    latest_ms = now_ms + _AHEAD_MS  # UTC now is ahead of New York: lenient
    invalid: dict[int, InvalidRecord] = {}
    for name, (low, high) in (("pickup_zone_id", _ZONES), ("dropoff_zone_id", _ZONES),
                              ("passenger_count", _PASSENGERS)):
        values = columns[name]
        for row in np.flatnonzero((values < low) | (values > high)).tolist():
            value = int(values[row])
            invalid.setdefault(row, InvalidRecord(
                f"{name} {value} is outside {low}..{high}"
                + (" (the TLC's unknown zone)" if value in (264, 265) else "")))
    pickup = columns["pickup_datetime"]
    for row in np.flatnonzero((pickup < _FIRST_PICKUP_MS) | (pickup > latest_ms)).tolist():
        invalid.setdefault(row, InvalidRecord(
            f"pickup_datetime {_wall_clock(int(pickup[row]))} is outside "
            f"{_FIRST_PICKUP:%Y-%m-%d}..{_wall_clock(latest_ms)}"))
    return invalid


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


@dataclass
class _KeyedScores:
    """What a batch's keyed models made: ``answers`` for the main topic (NaN where no
    keyed model answered), and by whom (key, version, rows); what they made that the main
    topic did not carry (key, version, rows, seconds); and all of it for the join."""

    answers: np.ndarray
    answering: list[tuple[str, str, np.ndarray]] = field(default_factory=list)
    shadowed: list[tuple[str, str, np.ndarray, np.ndarray]] = field(default_factory=list)
    joined: list[KeyedPredictions] = field(default_factory=list)


def _inputs(predictor: Predictor, fleet: Predictor, columns: dict[str, np.ndarray],
            records: list[dict[str, Any]], where: np.ndarray) -> dict[str, np.ndarray]:
    """Rows ``where`` as ``predictor`` takes them: the fleet model's columns where their
    signatures agree (the usual case), else built from the records."""
    if predictor.signature.inputs == fleet.signature.inputs:
        return {name: column[where] for name, column in columns.items()}
    return input_columns(predictor.signature).from_avro_values(
        [records[row] for row in where.tolist()])


def _predict_rows(predictor: Predictor, fleet: Predictor, columns: dict[str, np.ndarray],
                  records: list[dict[str, Any]], where: np.ndarray, label: str) -> np.ndarray:
    """A keyed model's answers for rows ``where`` (NaN where it failed), from a call on a
    power of two of rows (the last row repeated): TensorFlow keeps oneDNN kernels per input
    shape and model, and 62 zone models called on every row count up to 3,000 grew by
    215 MB and went on growing; called on powers of two, 94 MB and flat, for ~10% more
    time a call (measured in one process, 2026-12-05)."""
    rows = 1 << (where.size - 1).bit_length()
    called = where if rows == where.size else np.concatenate(
        [where, np.full(rows - where.size, where[-1])])
    made, _ = _predict(predictor, _inputs(predictor, fleet, columns, records, called), rows,
                       label)
    answers: np.ndarray = made[:where.size]
    return answers


def _score_keyed(routing: Routing, records: list[dict[str, Any]],
                 columns: dict[str, np.ndarray], fleet: Predictor, model_name: str,
                 trip_ids: list[str], result: BatchResult,
                 clock: Callable[[], float]) -> _KeyedScores:
    """Each key's trips scored by its loaded model, one call per key, and by its rollout's
    candidate beside it (a canary answering its share of the key's trips, as a fleet
    canary does). Rows a key's models fail on are left to the fleet model; a champion
    failing on its whole share and on the smoke requests is reported in ``keyed_unfit``, a
    candidate in ``keyed_candidate_unfit``."""
    rows = len(records)
    scores = _KeyedScores(np.full(rows, np.nan))
    source = source_column(routing.field)
    given = columns.get(source)
    values = given if given is not None and np.issubdtype(given.dtype, np.integer) else \
        np.fromiter((record[source] or 0 for record in records), np.int64, rows)
    # each distinct value's key, then the distinct keys (a borough's zones share one): a
    # sort of integers and of a few keys, not of a key string per row
    distinct, value_at = np.unique(values, return_inverse=True)
    present, key_at = np.unique(route_keys(routing.field, distinct), return_inverse=True)
    inverse = key_at[value_at]
    models = routing.models([key for key in present.tolist() if key])
    if not models:
        return scores
    order = np.argsort(inverse, kind="stable")  # the rows of each key, together
    bounds = np.searchsorted(inverse[order], np.arange(present.size + 1))
    for i, key in enumerate(present.tolist()):
        model = models.get(key)
        if model is None:
            continue
        where = order[bounds[i]:bounds[i + 1]]
        label = f"{model_name}[{key}]"
        try:
            made = _predict_rows(model.predictor, fleet, columns, records, where,
                                 f"{label} {model.version}")
        except UnfitModel as exc:
            result.keyed_unfit[key] = exc
            continue
        ok = usable(made)
        made = np.where(ok, made, np.nan)
        result.keyed_answers.append(KeyedAnswers(key, model.version, model.profile, where,
                                                 made))
        versions: tuple[str, ...] = (model.version,)
        seconds = [made]
        by_candidate = np.zeros(where.size, dtype=bool)
        c = model.candidate
        if c is not None:
            theirs, theirs_ok = np.full(where.size, np.nan), np.zeros(where.size, dtype=bool)
            started = clock()
            try:
                theirs = _predict_rows(c.predictor, fleet, columns, records, where,
                                       f"{label} {c.version}")
                theirs_ok = usable(theirs)
            except UnfitModel as exc:
                result.keyed_candidate_unfit[key] = exc
            result.keyed_rollouts.append(KeyedRollout(
                key, model.version, c.version, where.size, where.size - int(theirs_ok.sum()),
                clock() - started))
            theirs = np.where(theirs_ok, theirs, np.nan)
            versions, seconds = (*versions, c.version), [*seconds, theirs]
            if c.mode == CANARY:
                by_candidate = theirs_ok & np.fromiter(
                    (answered_by_candidate(trip_ids[row], c.version, c.weight)
                     for row in where.tolist()), bool, where.size)
            for version, side, answers, answered in (
                    (c.version, ~by_candidate, theirs, theirs_ok),
                    (model.version, by_candidate, made, ok)):
                if (shadowed := side & answered).any():
                    scores.shadowed.append((key, version, where[shadowed], answers[shadowed]))
            scores.answers[where[by_candidate]] = theirs[by_candidate]
            scores.answering.append((key, c.version, where[by_candidate]))
        mine = ok & ~by_candidate
        scores.answers[where[mine]] = made[mine]
        scores.answering.append((key, model.version, where[mine]))
        scores.joined.append(KeyedPredictions(key, where, versions, np.column_stack(seconds)))
    return scores


def _answered(group: KeyedPredictions, answered: np.ndarray, out: np.ndarray
              ) -> KeyedPredictions:
    """``group`` for the join: its rows that got a prediction and its key's champion made
    one (what the keyed live error and its rollout's pairs are of), as positions in
    ``out``."""
    kept = answered[group.rows] & ~np.isnan(group.seconds[:, 0])
    return dataclasses.replace(group, rows=np.searchsorted(out, group.rows[kept]),
                               seconds=group.seconds[kept])


def score_batch(messages: Sequence[Message], predictor: Predictor, model_name: str,
                model_version: str, codec: Codec, now_ms: int,
                clock: Callable[[], float] = time.perf_counter,
                candidate: Candidate | None = None,
                routing: Routing | None = None) -> BatchResult:
    """Decode, check, score in one model call, encode. Expected per-record failures become
    dead letters: a record the model fails on alone is isolated by splitting the batch.
    A model that fails on the whole batch and on the smoke requests raises UnfitModel (no
    record is blamed); anything else propagates and stops the worker.

    With a ``candidate`` the same rows are scored by both (one decode, two model calls).
    Each trip gets exactly one prediction for the main topic, stamped with the version
    that made it (the candidate's for a canary's share of trips, where it answered); the
    other version's goes to ``shadow``, as one ShadowPredictions per version and batch.
    The candidate failing never costs a trip its
    prediction: it is counted, and an unfit candidate is reported, not raised.

    With ``routing`` a trip whose key has a loaded keyed model gets that model's prediction
    (stamped with its key); the others, and those it fails on, the fleet model's as above
    (stamped as a fallback). The fleet model scores every trip: it is the fallback ready
    on the spot, and the yardstick the keyed models are judged against live. A key's
    rollout candidate is scored beside its key's model as a candidate is beside the
    fleet model, on that key's trips only."""
    result = BatchResult()

    def dead(msg: Message, stage: str, exc: Exception) -> None:
        model = (model_name, model_version) if stage == "predict" else (None, None)
        letter = dead_letter(codec, msg, stage, exc, now_ms, *model)
        result.dead_letters.append(Outcome(
            dead_letter_key(msg.key()), letter, stage, type(exc).__name__,
            f"{msg.topic()}[{msg.partition()}]@{msg.offset()}", str(exc)[:200]))

    good: list[Message] = []
    records: list[dict[str, Any]] = []
    for msg, record in zip(messages, codec.decode_batch(
            [msg.value() or b"" for msg in messages], TripRequest.SCHEMA), strict=True):
        if isinstance(record, DecodeError):
            dead(msg, "decode", record)
        else:
            good.append(msg)
            records.append(record)
    checked = {name: np.fromiter((record[name] for record in records), np.int64,
                                 len(records)) for name in _CHECKED}
    invalid = _invalid(checked, now_ms)
    if invalid:
        for row, exc in sorted(invalid.items()):
            dead(good[row], "convert", exc)
        good = [msg for row, msg in enumerate(good) if row not in invalid]
        records = [record for row, record in enumerate(records) if row not in invalid]
    if not good:
        return result

    rows = len(good)
    columns = input_columns(predictor.signature).from_avro_values(records)
    started = clock()
    seconds, failed = _predict(predictor, columns, rows, f"{model_name} {model_version}")
    result.inference_seconds = clock() - started
    result.columns, result.champion_seconds = columns, seconds
    mine = usable(seconds)
    mine[list(failed)] = False
    theirs, theirs_ok = np.full(rows, np.nan), np.zeros(rows, dtype=bool)
    if candidate is not None:
        result.candidate_scored = rows
        started = clock()
        try:
            inputs = candidate.predictor.signature.inputs
            theirs, _ = _predict(candidate.predictor, columns if inputs == predictor.signature
                                 .inputs else input_columns(candidate.predictor.signature)
                                 .from_avro_values(records), rows,
                                 f"{model_name} {candidate.version}")
            theirs_ok = usable(theirs)
        except UnfitModel as exc:
            result.candidate_unfit = exc
        result.candidate_seconds = clock() - started
        result.candidate_failures = rows - int(theirs_ok.sum())

    trip_ids: list[str] = [record["trip_id"] for record in records]
    keyed = _KeyedScores(np.full(rows, np.nan)) if routing is None else _score_keyed(
        routing, records, columns, predictor, model_name, trip_ids, result, clock)
    keyed_seconds = keyed.answers
    keyed_rows = ~np.isnan(keyed_seconds)
    requested = np.fromiter((msg.timestamp()[1] for msg in good), np.int64, rows)
    # a canary's share is answered by the candidate, the champion standing in where it
    # failed; a shadow candidate never answers
    other_version = candidate.version if candidate is not None else ""
    by_candidate = np.zeros(rows, dtype=bool)
    if candidate is not None and candidate.mode == CANARY:
        by_candidate = theirs_ok & ~keyed_rows & np.fromiter(
            (answered_by_candidate(trip_id, other_version, candidate.weight)
             for trip_id in trip_ids), bool, rows)
    answered = by_candidate | mine | keyed_rows
    for row in np.flatnonzero(~answered).tolist():
        dead(good[row], "predict", failed[row] if row in failed
             else InvalidRecord(f"the model predicted {seconds[row]} seconds"))

    write = codec.prediction_writer(model_name, now_ms)
    values: list[bytes | None] = [None] * rows
    fallback = routing is not None
    for key, version, where in keyed.answering:
        ids = [trip_ids[row] for row in where.tolist()]
        for row, encoded in zip(where.tolist(), write.encode_many(
                ids, version, keyed_seconds[where], requested[where], model_key=key),
                strict=True):
            values[row] = encoded
    if keyed.answering:
        result.keyed = int(keyed_rows.sum())
        result.served_by[KEYED] = result.keyed
        result.request_times_ms[KEYED] = requested[keyed_rows]
    for key, version, where, shadow_seconds in keyed.shadowed:
        result.shadow.append(Outcome(None, codec.encode_shadow_predictions(
            model_name, version, now_ms, [trip_ids[row] for row in where.tolist()],
            shadow_seconds, requested[where], key)))
        result.shadowed_by[KEYED] += where.size
    fleet = ~keyed_rows
    for version, side, answers, unused, unused_ok, other in (
            (model_version, fleet & ~by_candidate, seconds, theirs, theirs_ok, other_version),
            (other_version, by_candidate, theirs, seconds, mine, model_version)):
        where = np.flatnonzero(side & answered)
        if where.size:
            ids = [trip_ids[row] for row in where.tolist()]
            for row, encoded in zip(where.tolist(), write.encode_many(
                    ids, version, answers[where], requested[where], fallback=fallback),
                    strict=True):
                values[row] = encoded
            result.served_by[version] = where.size
            result.request_times_ms[version] = requested[where]
            result.fallbacks += where.size if fallback else 0
        # what the main topic did not carry, by version, as columns: one shadow message each
        shadowed = np.flatnonzero(side & unused_ok)
        if shadowed.size:
            result.shadow.append(Outcome(None, codec.encode_shadow_predictions(
                model_name, other, now_ms, [trip_ids[row] for row in shadowed.tolist()],
                unused[shadowed], requested[shadowed])))
            result.shadowed_by[other] = shadowed.size
    out = np.flatnonzero(answered)
    rows_out: list[int] = out.tolist()
    result.predictions = [Outcome(good[row].key() or trip_ids[row].encode(), values[row] or b"")
                          for row in rows_out]
    # for the live evaluation: what each version predicted (NaN where it made none)
    made = [np.where(mine, seconds, np.nan)] + ([np.where(theirs_ok, theirs, np.nan)]
                                                if candidate is not None else [])
    result.predicted = Predictions(
        [trip_ids[row] for row in rows_out],
        (model_version,) + ((other_version,) if candidate is not None else ()),
        np.column_stack(made)[out],
        np.fromiter((good[row].partition() or 0 for row in rows_out), np.int64, out.size),
        tuple(_answered(group, answered, out) for group in keyed.joined))
    return result
