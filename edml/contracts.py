"""The events that travel between the parts, mirroring ``avro/*.avsc`` field for field.

A test checks that every dataclass here has exactly the fields of its schema. Timestamps are
``datetime``: naive for New York wall-clock fields (``local-timestamp-millis``), UTC-aware for
instants (``timestamp-millis``), as fastavro reads them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar, Self

__all__ = [
    "CANARY",
    "SHADOW",
    "DataWindow",
    "DeadLetter",
    "DriftFinding",
    "DriftWindow",
    "ModelEvent",
    "ModelKey",
    "ModelMetadata",
    "ModelSignature",
    "Record",
    "RetrainRequest",
    "Rollout",
    "RolloutDecision",
    "RolloutEvidence",
    "RolloutPolicy",
    "ShadowPredictions",
    "TensorSpec",
    "TripCompleted",
    "TripPrediction",
    "TripRequest",
    "model_label",
]


class Record:
    """A flat event: its Avro record is its fields, as they are."""

    SCHEMA: ClassVar[str]  # full Avro name, e.g. "edml.TripRequest"

    def to_avro(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_avro(cls, record: dict[str, Any]) -> Self:
        return cls(**record)


@dataclass(frozen=True, slots=True)
class TripRequest(Record):
    SCHEMA: ClassVar[str] = "edml.TripRequest"

    trip_id: str
    pickup_datetime: datetime
    pickup_zone_id: int
    dropoff_zone_id: int
    passenger_count: int
    vendor_id: int | None = None
    estimated_distance_miles: float | None = None


@dataclass(frozen=True, slots=True)
class TripPrediction(Record):
    SCHEMA: ClassVar[str] = "edml.TripPrediction"

    trip_id: str
    predicted_duration_seconds: float
    model_name: str
    model_version: str
    requested_at: datetime
    predicted_at: datetime
    model_key: str | None = None  # the keyed model's key; None: the fleet model's
    fallback: bool = False  # the fleet model answered for a key that routes elsewhere


@dataclass(frozen=True, slots=True)
class ShadowPredictions(Record):
    """A batch of one version's predictions that no consumer got (columns, trip by trip)."""

    SCHEMA: ClassVar[str] = "edml.ShadowPredictions"

    model_name: str
    model_version: str
    predicted_at: datetime
    trip_ids: list[str]
    predicted_duration_seconds: list[float]
    requested_at: list[datetime]
    model_key: str | None = None  # a keyed model's; None: the fleet model's

    def predictions(self) -> list[TripPrediction]:
        """Trip by trip, as the main topic would have carried them."""
        return [TripPrediction(trip_id, seconds, self.model_name, self.model_version,
                               requested_at, self.predicted_at, self.model_key)
                for trip_id, seconds, requested_at in zip(
                    self.trip_ids, self.predicted_duration_seconds, self.requested_at,
                    strict=True)]


@dataclass(frozen=True, slots=True)
class DriftWindow(Record):
    """One worker's counts of one champion version's traffic on one event-time day."""

    SCHEMA: ClassVar[str] = "edml.DriftWindow"

    model_name: str
    model_version: str
    worker: str
    day: date
    requests: int
    histograms: dict[str, list[int]]
    latest_pickup: datetime | None
    joined: int
    sum_abs_error: float
    sum_sq_error: float
    sum_error: float
    sent_at: datetime
    model_key: str | None = None  # a keyed model's traffic; None: the fleet model's


@dataclass(frozen=True, slots=True)
class TripCompleted(Record):
    SCHEMA: ClassVar[str] = "edml.TripCompleted"

    trip_id: str
    dropoff_datetime: datetime
    duration_seconds: float


@dataclass(frozen=True, slots=True)
class ModelKey(Record):
    SCHEMA: ClassVar[str] = "edml.ModelKey"

    name: str
    key: str | None = None  # a keyed model's key; None: the fleet model


@dataclass(frozen=True, slots=True)
class TensorSpec:
    name: str
    dtype: str


@dataclass(frozen=True, slots=True)
class ModelSignature:
    name: str
    inputs: tuple[TensorSpec, ...]
    output: TensorSpec


@dataclass(frozen=True, slots=True)
class DataWindow:
    start: date
    end: date


@dataclass(frozen=True, slots=True)
class RolloutPolicy:
    """How the rollout controller judges a candidate; the defaults are documented in
    the README (Rollouts) and in ``avro/ModelMetadata.avsc``."""

    min_paired: int = 300
    max_paired: int = 20_000
    margin_seconds: float = 6.0
    confidence: float = 0.95
    max_failure_rate: float = 0.001
    latency_slo_ms: float = 250.0


SHADOW, CANARY = "shadow", "canary"


@dataclass(frozen=True, slots=True)
class Rollout:
    """A candidate scored beside the champion on every trip."""

    candidate: ModelMetadata
    mode: str  # SHADOW or CANARY
    weight: float  # canary: share of trips answered by the candidate; shadow: 0
    started_at: datetime
    policy: RolloutPolicy


def model_label(name: str, key: str | None) -> str:
    """A fleet model's name, or a keyed model's ``name[key]``: one string per model."""
    return name if key is None else f"{name}[{key}]"


@dataclass(frozen=True, slots=True)
class ModelMetadata(Record):
    """The serving state of one model name: its own fields are the champion version."""

    SCHEMA: ClassVar[str] = "edml.ModelMetadata"

    name: str
    version: str
    storage_uri: str
    checksum: str
    signature: ModelSignature
    metrics: dict[str, float]
    data_window: DataWindow
    created_at: datetime
    git_commit: str | None = None
    rollout_state: str | None = None  # deprecated: see rollout
    rollout: Rollout | None = None
    previous: ModelMetadata | None = None
    changed_by: str | None = None  # publish, promote, rollback or controller
    profile: str | None = None  # the reference profile's file in the artifact (drift)
    retrain_request: str | None = None  # the RetrainRequest this version was made for
    key: str | None = None  # a keyed model: the routing value it answers; None: the fleet
    routed_by: str | None = None  # the family's routing field (edml.routing)

    @property
    def label(self) -> str:
        """How logs and errors name it: ``trip-duration`` or ``trip-duration[132]``."""
        return model_label(self.name, self.key)

    @property
    def candidate(self) -> ModelMetadata | None:
        return self.rollout.candidate if self.rollout is not None else None

    def version_only(self) -> ModelMetadata:
        """This version alone: no rollout, no previous (what a state nests)."""
        return dataclasses.replace(self, rollout=None, previous=None, changed_by=None)

    def to_avro(self) -> dict[str, Any]:
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        record["signature"] = dataclasses.asdict(self.signature)
        record["data_window"] = dataclasses.asdict(self.data_window)
        if self.rollout is not None:
            r = self.rollout
            record["rollout"] = {"candidate": r.candidate.to_avro(), "mode": r.mode,
                                 "weight": r.weight, "started_at": r.started_at,
                                 "policy": dataclasses.asdict(r.policy)}
        if self.previous is not None:
            record["previous"] = self.previous.to_avro()
        return record

    @classmethod
    def from_avro(cls, record: dict[str, Any]) -> Self:
        sig = record["signature"]
        rollout, previous = record.get("rollout"), record.get("previous")
        return cls(
            **{
                **record,
                "signature": ModelSignature(
                    name=sig["name"],
                    inputs=tuple(TensorSpec(**spec) for spec in sig["inputs"]),
                    output=TensorSpec(**sig["output"]),
                ),
                "data_window": DataWindow(**record["data_window"]),
                "rollout": None if rollout is None else Rollout(
                    candidate=ModelMetadata.from_avro(rollout["candidate"]),
                    mode=rollout["mode"], weight=rollout["weight"],
                    started_at=rollout["started_at"],
                    policy=RolloutPolicy(**rollout["policy"])),
                "previous": None if previous is None else ModelMetadata.from_avro(previous),
            }
        )


@dataclass(frozen=True, slots=True)
class DeadLetter(Record):
    SCHEMA: ClassVar[str] = "edml.DeadLetter"

    key: bytes | None
    value: bytes | None
    source_topic: str
    source_partition: int
    source_offset: int
    stage: str
    error_kind: str
    error_message: str
    failed_at: datetime
    model_name: str | None = None
    model_version: str | None = None
    value_size: int | None = None  # set when value is a prefix of a too-big original
    value_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class RolloutDecision:
    """Why the rollout controller promoted or rolled back a candidate."""

    rule: str  # better, worse, inconclusive, failures or latency
    champion_version: str
    candidate_version: str
    paired: int
    confidence: float
    champion_mae_seconds: float | None = None
    candidate_mae_seconds: float | None = None
    mean_diff_seconds: float | None = None
    ci_low_seconds: float | None = None
    ci_high_seconds: float | None = None
    candidate_failure_rate: float | None = None
    candidate_call_ms: float | None = None


@dataclass(frozen=True, slots=True)
class DriftFinding:
    """A champion version's drift, as the controller found it (``controller.drift``)."""

    detector: str  # inputs.<feature>, outcomes.bias, outcomes.mae_change, ...
    statistic: float
    threshold: float
    window_start: date  # event-time days
    window_end: date
    detail: str


@dataclass(frozen=True, slots=True)
class RetrainRequest:
    """The controller asks for a new version trained on recent trips."""

    request_id: str
    reason: str
    train_start: date  # pickup days of the proposed training window
    train_end: date
    champion_version: str  # the version that drifted: a retrain may warm-start from it


@dataclass(frozen=True, slots=True)
class ModelEvent(Record):
    SCHEMA: ClassVar[str] = "edml.ModelEvent"

    model_name: str
    model_version: str
    # "loaded", "load_failed", "retired", "rejected"; the controller's "promoted" and
    # "rolled_back", with their decision
    kind: str
    worker: str
    at: datetime
    error_kind: str | None = None
    message: str | None = None
    load_seconds: float | None = None
    decision: RolloutDecision | None = None
    drift: DriftFinding | None = None  # kind drift_detected
    retrain: RetrainRequest | None = None  # kind retrain_requested
    model_key: str | None = None  # a keyed model's event

    def to_avro(self) -> dict[str, Any]:
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("decision", "drift", "retrain"):
            if record[name] is not None:
                record[name] = dataclasses.asdict(record[name])
        return record

    @classmethod
    def from_avro(cls, record: dict[str, Any]) -> Self:
        decision, drift, retrain = (record.get(k) for k in ("decision", "drift", "retrain"))
        return cls(**{**record,
                      "decision": None if decision is None else RolloutDecision(**decision),
                      "drift": None if drift is None else DriftFinding(**drift),
                      "retrain": None if retrain is None else RetrainRequest(**retrain)})


@dataclass(frozen=True, slots=True)
class RolloutEvidence(Record):
    """One worker's sums over one window of a rollout; they add up across workers."""

    SCHEMA: ClassVar[str] = "edml.RolloutEvidence"

    model_name: str
    champion_version: str
    candidate_version: str
    worker: str
    window_start: datetime
    window_end: datetime
    paired: int = 0
    sum_diff: float = 0.0
    sum_sq_diff: float = 0.0
    sum_abs_error_champion: float = 0.0
    sum_abs_error_candidate: float = 0.0
    candidate_scored: int = 0
    candidate_failures: int = 0
    candidate_batches: int = 0
    candidate_call_seconds: float = 0.0
    model_key: str | None = None  # a keyed model's rollout; None: the fleet model's
