"""One plausible event of each contract, for smoke tests of a deployment and the demo."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

from edml.contracts import (
    CANARY,
    DataWindow,
    DeadLetter,
    DriftFinding,
    DriftWindow,
    ModelEvent,
    ModelKey,
    ModelMetadata,
    ModelSignature,
    Record,
    RetrainRequest,
    Rollout,
    RolloutDecision,
    RolloutEvidence,
    RolloutPolicy,
    ShadowPredictions,
    TensorSpec,
    TripCompleted,
    TripPrediction,
    TripRequest,
)

__all__ = ["SIGNATURE", "sample_events", "smoke_requests"]

# what `edml train` exports: the four request fields a trip is known by at pickup
SIGNATURE = ModelSignature(
    name="serving_default",
    inputs=(
        TensorSpec("pickup_datetime", "int64"),
        TensorSpec("pickup_zone_id", "int64"),
        TensorSpec("dropoff_zone_id", "int64"),
        TensorSpec("passenger_count", "int64"),
    ),
    output=TensorSpec("duration_seconds", "float32"),
)


def sample_events(now: datetime | None = None) -> list[tuple[Record, bytes | Record | None]]:
    """(value, key) pairs: keys are UTF-8 ids, a record (ModelKey) on the model topic, or
    none (shadow predictions)."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    pickup = datetime(2019, 10, 14, 8, 30)  # New York wall clock
    metadata = ModelMetadata(
        name="trip-duration",
        version="0.1.0-20261122000000-abc1234",
        storage_uri="file:///tmp/edml/models/trip-duration/0.1.0-20261122000000-abc1234/",
        checksum="sha256:" + "0" * 64,
        signature=SIGNATURE,
        metrics={"mae_minutes": 3.6},
        data_window=DataWindow(date(2018, 1, 1), date(2019, 10, 31)),
        created_at=now,
        git_commit="abc1234",
    )
    candidate = dataclasses.replace(metadata, version="0.1.0-20261123000000-def5678",
                                    storage_uri=metadata.storage_uri.replace(
                                        metadata.version, "0.1.0-20261123000000-def5678"))
    in_rollout = dataclasses.replace(
        metadata, rollout=Rollout(candidate, CANARY, 0.1, now, RolloutPolicy()),
        previous=dataclasses.replace(metadata, version="0.1.0-20261121000000-0a1b2c3"),
        changed_by="publish")
    return [
        (TripRequest("trip-1", pickup, 161, 236, 1, vendor_id=2), b"trip-1"),
        (TripPrediction("trip-1", 720.0, "trip-duration", metadata.version, now, now), b"trip-1"),
        (TripCompleted("trip-1", datetime(2019, 10, 14, 8, 43), 780.0), b"trip-1"),
        (ShadowPredictions("trip-duration", candidate.version, now, ["trip-1", "trip-2"],
                           [702.5, 1310.0], [now, now]), None),
        (metadata, ModelKey("trip-duration")),
        (in_rollout, ModelKey("trip-duration")),
        (RolloutEvidence("trip-duration", metadata.version, candidate.version, "worker-0",
                         now, now, paired=3, sum_diff=-90.0, sum_sq_diff=4500.0,
                         sum_abs_error_champion=360.0, sum_abs_error_candidate=270.0,
                         candidate_scored=4, candidate_failures=0, candidate_batches=1,
                         candidate_call_seconds=0.004), b"trip-duration"),
        (DriftWindow("trip-duration", metadata.version, "worker-0", date(2020, 3, 18), 412,
                     {"passenger_count": [0, 301, 62, 14, 5, 11, 19, 0, 0, 0]},
                     datetime(2020, 3, 18, 23, 58), joined=380, sum_abs_error=112_000.0,
                     sum_sq_error=51_000_000.0, sum_error=61_000.0, sent_at=now),
         b"trip-duration"),
        (ModelEvent("trip-duration", metadata.version, "drift_detected", "controller", now,
                    drift=DriftFinding("outcomes.bias", 5.01, 8.0, date(2020, 3, 18),
                                       date(2020, 3, 18), "mean error +5.01 min on 111 "
                                       "trips")), b"trip-duration"),
        (ModelEvent("trip-duration", metadata.version, "retrain_requested", "controller", now,
                    retrain=RetrainRequest("retrain-trip-duration-20200319", "outcomes.bias",
                                           date(2020, 2, 20), date(2020, 3, 18),
                                           metadata.version)), b"trip-duration"),
        (ModelEvent("trip-duration", candidate.version, "promoted", "controller", now,
                    decision=RolloutDecision("better", metadata.version, candidate.version,
                                             300, 0.95, 240.0, 228.0, -12.0, -15.1, -8.9,
                                             0.0, 4.2)), b"trip-duration"),
        (DeadLetter(b"trip-2", b"\x00garbage", "edml.trip-requests", 0, 42, "decode",
                    "DecodeError", "not an edml Avro message", now), b"trip-2"),
    ]


def smoke_requests() -> list[TripRequest]:
    """A few everyday New York trips, to prove that a model answers plausibly."""
    return [
        TripRequest("smoke-1", datetime(2019, 10, 14, 8, 30), 161, 236, 1),  # Midtown -> UES
        TripRequest("smoke-2", datetime(2019, 10, 16, 17, 45), 132, 230, 2),  # JFK -> Times Sq
        TripRequest("smoke-3", datetime(2019, 10, 19, 23, 10), 79, 148, 1),  # E Village -> LES
        TripRequest("smoke-4", datetime(2019, 10, 20, 6, 5), 138, 162, 1),  # LaGuardia -> Midtown
        TripRequest("smoke-5", datetime(2019, 10, 17, 13, 0), 237, 237, 3),  # within UES
    ]
