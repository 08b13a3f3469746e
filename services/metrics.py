"""Prometheus metrics of one worker, in a registry of its own (tests run several)."""

from __future__ import annotations

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    generate_latest,
)

from edml.contracts import ModelMetadata

__all__ = ["Metrics", "observe_many"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0)  # seconds
_BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10_000, 20_000)  # records
_ERROR_BUCKETS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60)  # minutes


def observe_many(histogram: Histogram, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for each of ``values``, as one count per bucket: a batch's
    thousand latencies cost one call, not a thousand locked ones. Written by hand because
    prometheus_client has no bulk observe; it adds to the same bucket and sum values as
    ``observe`` does (tests/services/test_metrics.py holds the two equal)."""
    if not values.size:
        return
    histogram._raise_if_not_observable()  # type: ignore[no-untyped-call]  # a parent with labels, not one of its children
    bounds = np.asarray(histogram._upper_bounds)
    counts = np.bincount(np.searchsorted(bounds, values, side="left"),
                         minlength=bounds.size)[:bounds.size]  # NaN observes no bucket
    histogram._sum.inc(float(values.sum()))
    for bucket, count in zip(histogram._buckets, counts.tolist(), strict=True):
        if count:
            bucket.inc(count)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.records_in = Counter("edml_records_in", "Trip requests consumed", registry=r)
        self.predictions_out = Counter("edml_predictions_out", "Predictions produced",
                                       ["model_version"], registry=r)
        self.dead_letters = Counter("edml_dead_letters", "Records sent to the dead-letter "
                                    "topic", ["stage", "kind"], registry=r)
        self.batch_size = Histogram("edml_batch_size_records", "Records per micro-batch",
                                    buckets=_BATCH_BUCKETS, registry=r)
        self.inference_seconds = Histogram("edml_inference_seconds", "Model call per batch",
                                           ["model_version"], buckets=_LATENCY_BUCKETS,
                                           registry=r)
        self.end_to_end_seconds = Histogram(
            "edml_end_to_end_seconds", "Request timestamp to prediction produced, by the "
            "version that answered", ["model_version"], buckets=_LATENCY_BUCKETS, registry=r)
        self.consumer_lag = Gauge(
            "edml_consumer_lag_records", "Records in an assigned partition past this worker's "
            "committed offset (the high watermark of its last fetch minus the commit)",
            ["topic", "partition"], registry=r)
        self.ready = Gauge("edml_worker_ready", "1 while /readyz answers ready", registry=r)
        self.model_info = Gauge("edml_model_info", "The serving model version (value 1)",
                                ["model_name", "model_version"], registry=r)
        self.model_load_seconds = Histogram("edml_model_load_seconds", "Fetch, verify, load "
                                            "and warm up one version", registry=r,
                                            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
        self.model_load_failures = Counter("edml_model_load_failures", "Versions refused",
                                           ["model_version", "kind"], registry=r)
        self.model_refused = Gauge(
            "edml_model_refused", "A version this worker refused, until a version loads "
            "after it (value 1)", ["model_version", "kind"], registry=r)
        self.offline_mae_minutes = Gauge(
            "edml_model_offline_mae_minutes", "The MAE a version in use had on its held-out "
            "trips at training (its metadata's metrics.mae_minutes)", ["model_version"],
            registry=r)
        self.dependency_failures = Counter(
            "edml_dependency_failures", "Batches that waited because a dependency failed "
            "(the records wait in Kafka; none is dead-lettered)", ["dependency"], registry=r)
        self.live_abs_error_minutes = Histogram(
            "edml_live_abs_error_minutes", "Absolute error of predictions joined with the "
            "actual durations", ["model_version"], buckets=_ERROR_BUCKETS, registry=r)

        self.candidate_info = Gauge(
            "edml_candidate_info", "The candidate scored beside the champion during a rollout "
            "(value: the share of trips it answers; 0 in shadow)", ["model_version", "mode"],
            registry=r)
        self.shadow_predictions_out = Counter(
            "edml_shadow_predictions_out", "Predictions produced to the shadow topic (made "
            "but not served: the candidate's in shadow, the other side's in a canary)",
            ["model_version"], registry=r)
        self.candidate_failures = Counter(
            "edml_candidate_failures", "Trips the candidate failed on (the champion answered "
            "them)", ["model_version"], registry=r)

        self.paired_diff_seconds = Summary(
            "edml_paired_diff_seconds", "Per trip both versions predicted and whose actual "
            "arrived: the candidate's absolute error minus the champion's (the mean is "
            "_sum / _count; negative: the candidate is closer)",
            ["champion_version", "candidate_version"], registry=r)

        # keyed models: no label names a key, so thousands of keys cost no more series
        self.keyed_predictions = Counter(
            "edml_keyed_predictions", "Main-topic predictions of a family routed by key: by "
            "a keyed model, or by the fleet model standing in (fallback)", ["answered_by"],
            registry=r)
        self.keyed_loaded = Gauge("edml_keyed_models_loaded", "Keyed models in memory",
                                  registry=r)
        self.keyed_bytes = Gauge("edml_keyed_models_bytes", "Estimated memory of the keyed "
                                 "models loaded (edml.keyed_models.footprint_bytes)",
                                 registry=r)
        self.keyed_budget_bytes = Gauge("edml_keyed_models_budget_bytes", "The keyed models' "
                                        "memory budget (EDML_SCORING_MODEL_MEMORY_MB)",
                                        registry=r)
        self.keyed_loads = Counter("edml_keyed_model_loads", "Keyed model loads, by outcome: "
                                   "loaded, failed, not_admitted (past the budget, its key "
                                   "asked for less than the model it would evict)",
                                   ["outcome"], registry=r)
        # every outcome exported from the start (at 0): a dashboard's rate has a series
        for label in ("loaded", "failed", "not_admitted"):
            self.keyed_loads.labels(label)
        for label in ("keyed", "fleet"):
            self.keyed_predictions.labels(label)
        self.keyed_evictions = Counter("edml_keyed_model_evictions", "Keyed models evicted "
                                       "to stay within the memory budget", registry=r)
        self.keyed_refused = Gauge(
            "edml_keyed_models_refused", "Keys whose announced model did not load (the fleet "
            "model answers them): the artifact refused, or storage away until a retry",
            registry=r)
        self._in_use: dict[str, ModelMetadata | None] = {}

    def candidate(self, metadata: ModelMetadata | None, mode: str = "",
                  weight: float = 0.0) -> None:
        self.candidate_info.clear()
        if metadata is not None:
            self.candidate_info.labels(metadata.version, mode).set(weight)
        self._in_use["candidate"] = metadata
        self._show_offline_mae()

    def serving(self, name: str, metadata: ModelMetadata | None) -> None:
        self.model_info.clear()
        if metadata is not None:
            self.model_info.labels(name, metadata.version).set(1)
        self._in_use["champion"] = metadata
        self._show_offline_mae()

    def loaded(self, load_seconds: float) -> None:
        """A version loaded: what was refused before it is no longer the news."""
        self.model_load_seconds.observe(load_seconds)
        self.model_refused.clear()

    def refused(self, version: str, kind: str) -> None:
        self.model_load_failures.labels(version, kind).inc()
        self.model_refused.labels(version, kind).set(1)

    def _show_offline_mae(self) -> None:
        self.offline_mae_minutes.clear()
        for metadata in self._in_use.values():
            mae = metadata.metrics.get("mae_minutes") if metadata is not None else None
            if metadata is not None and mae is not None:
                self.offline_mae_minutes.labels(metadata.version).set(mae)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
