"""The Grafana dashboard of a scoring fleet, built with grafana-foundation-sdk (the JSON
Grafana imports is generated from this: ``python -m ops.build``).

Every panel reads the workers' own /metrics (services/metrics.py): nothing else needs to
be installed. ``$__rate_interval`` is Grafana's: at least four scrape intervals."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.table import Panel as TablePanel
from grafana_foundation_sdk.builders.timeseries import Panel as TimeseriesPanel
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

__all__ = ["DASHBOARD", "PANELS", "Panel", "Query", "dashboard_json", "panel_queries"]

DASHBOARD = Path(__file__).parent / "grafana" / "edml-scoring.json"
_DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
_RATE = "[$__rate_interval]"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    table: bool = False  # now, one row a series; otherwise over time
    width: int = 8


@dataclass(frozen=True)
class Section:
    title: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)


def _quantiles(metric: str, by: str) -> tuple[Query, ...]:
    return tuple(Query(f"histogram_quantile({q}, sum by (le, {by}) "
                       f"(rate({metric}_bucket{_RATE})))", f"p{round(q * 100)} {{{{{by}}}}}")
                 for q in (0.5, 0.99))


PANELS = (
    Section("Traffic", (
        Panel("Records in, predictions out", "Trip requests consumed, and predictions "
              "produced by the version that answered.", (
                  Query(f"sum(rate(edml_records_in_total{_RATE}))", "in"),
                  Query(f"sum by (model_version) (rate(edml_predictions_out_total{_RATE}))",
                        "out {{model_version}}")), unit="reqps"),
        Panel("Dead letters by stage and kind", "Records that could not be scored, by where "
              "they failed (decode, convert, predict) and why. Each is on the dead-letter "
              "topic with its reason.", (
                  Query(f"sum by (stage, kind) (rate(edml_dead_letters_total{_RATE}))",
                        "{{stage}} {{kind}}"),), unit="reqps"),
        Panel("Batch size", "Records per micro-batch: at EDML_SCORING_BATCH_SIZE "
              "(EDML_SCORING_KEYED_BATCH_SIZE for a family routed by key) the workers are "
              "saturated.", (
                  Query(f"sum(rate(edml_batch_size_records_sum{_RATE})) / "
                        f"sum(rate(edml_batch_size_records_count{_RATE}))", "mean"),
                  Query(f"histogram_quantile(0.99, sum by (le) "
                        f"(rate(edml_batch_size_records_bucket{_RATE})))", "p99"))),
    )),
    Section("Latency", (
        Panel("Inference latency per version", "One model call on one micro-batch.",
              _quantiles("edml_inference_seconds", "model_version"), unit="s", width=12),
        Panel("End-to-end latency per version", "Request timestamp to prediction produced; "
              "the alert's SLO is a p99 of 1 s.",
              _quantiles("edml_end_to_end_seconds", "model_version"), unit="s", width=12),
    )),
    Section("Kafka", (
        Panel("Consumer lag per partition", "Records past each partition's committed "
              "offset, as the worker that owns the partition sees it.", (
                  Query("sum by (topic, partition) (edml_consumer_lag_records)",
                        "{{topic}}[{{partition}}]"),), width=24),
    )),
    Section("Models", (
        Panel("Version serving per worker", "The champion each worker serves now.", (
            Query("max by (instance, model_version) (edml_model_info)"),), table=True),
        Panel("Model load time", "Fetch, verify, load and warm up a version: the mean of "
              "each worker's loads.", (
                  Query("max by (instance) (edml_model_load_seconds_sum / "
                        "edml_model_load_seconds_count)", "{{instance}}"),), unit="s"),
        Panel("Refused versions", "Versions the workers refused, by why (ArtifactError, "
              "ModelError, UnfitModel, StorageError, RejectedEvent); standing: not "
              "superseded by a version loaded since.", (
                  Query("sum by (model_version, kind) (edml_model_load_failures_total)",
                        "refusals {{model_version}} {{kind}}"),
                  Query("max by (model_version, kind) (edml_model_refused)",
                        "standing {{model_version}} {{kind}}"))),
        Panel("Live MAE per version", "Mean absolute error of predictions joined with the "
              "actual durations, beside the version's MAE on its held-out trips at "
              "training.", (
                  Query(f"sum by (model_version) (rate(edml_live_abs_error_minutes_sum"
                        f"{_RATE})) / sum by (model_version) "
                        f"(rate(edml_live_abs_error_minutes_count{_RATE}))",
                        "live {{model_version}}"),
                  Query("max by (model_version) (edml_model_offline_mae_minutes)",
                        "offline {{model_version}}")), unit="m", width=24),
    )),
    Section("Rollout", (
        Panel("Candidate and its share", "The version scored beside the champion, its mode "
              "(shadow or canary) and the share of trips it answers.", (
                  Query("max by (model_version, mode) (edml_candidate_info)"),),
              table=True),
        Panel("Paired evidence", "Per trip both versions predicted and whose actual "
              "arrived: the candidate's absolute error minus the champion's, mean so far "
              "(negative: the candidate is closer). The controller decides on these pairs.", (
                  Query("sum by (champion_version, candidate_version) "
                        "(edml_paired_diff_seconds_sum) / sum by (champion_version, "
                        "candidate_version) (edml_paired_diff_seconds_count)",
                        "{{candidate_version}} vs {{champion_version}}"),), unit="s"),
        Panel("Predictions made but not served", "To the shadow topic: a shadow "
              "candidate's, or in a canary the other version's.", (
                  Query(f"sum by (model_version) (rate(edml_shadow_predictions_out_total"
                        f"{_RATE}))", "{{model_version}}"),), unit="reqps"),
    )),
    Section("Keyed models", (
        Panel("Answered by keyed models", "Main-topic predictions of a family routed by key: "
              "by the key's own model, or by the fleet model standing in (no model for the "
              "key, not loaded yet, not let in, or failing on the trip).", (
                  Query(f"sum by (answered_by) (rate(edml_keyed_predictions_total{_RATE}))",
                        "{{answered_by}}"),), unit="reqps"),
        Panel("Keyed models in memory", "Estimated bytes of the keyed models loaded, "
              "against each worker's budget (EDML_SCORING_MODEL_MEMORY_MB).", (
                  Query("sum by (instance) (edml_keyed_models_bytes)", "loaded {{instance}}"),
                  Query("max by (instance) (edml_keyed_models_budget_bytes)",
                        "budget {{instance}}")), unit="bytes"),
        Panel("Keyed model loads", "Loads by outcome, and evictions. A steady rate of "
              "not_admitted: the budget holds fewer models than the traffic asks for.", (
                  Query(f"sum by (outcome) (rate(edml_keyed_model_loads_total{_RATE}))",
                        "{{outcome}}"),
                  Query(f"sum(rate(edml_keyed_model_evictions_total{_RATE}))",
                        "evicted")), unit="ops"),
    )),
)


def _target(query: Query, ref: str, instant: bool) -> Dataquery:
    target = Dataquery().expr(query.expr).ref_id(ref).datasource(_DATASOURCE)
    if query.legend:
        target = target.legend_format(query.legend)
    if instant:
        target = target.instant().format(PromQueryFormat.TABLE)
    return target


def _panel(spec: Panel) -> TimeseriesPanel | TablePanel:
    built: TimeseriesPanel | TablePanel = TablePanel() if spec.table else \
        TimeseriesPanel().unit(spec.unit)
    built = built.title(spec.title).description(spec.description).datasource(_DATASOURCE) \
        .span(spec.width).height(8)
    for i, query in enumerate(spec.queries):
        built = built.with_target(_target(query, chr(ord("A") + i), spec.table))
    return built


def build() -> Dashboard:
    board = (
        Dashboard("edml scoring")
        .uid("edml-scoring")
        .tags(["edml", "kafka", "ml-serving"])
        .description("A fleet of edml scoring workers: traffic, latency, lag, models and "
                     "rollouts. Alerts: ops/prometheus/alerts.yml.")
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(DatasourceVariable("datasource").label("Prometheus")
                       .type("prometheus"))
    )
    ids = iter(range(1, 1000))  # Grafana links and repeats by id: unique, and stable
    for section in PANELS:
        board = board.with_row(Row(section.title).id(next(ids)))
        for spec in section.panels:
            board = board.with_panel(_panel(spec).id(next(ids)))
    return board


def dashboard_json() -> str:
    return json.dumps(build().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def panel_queries(document: dict[str, Any]) -> dict[str, list[str]]:
    """Every panel's queries, by title, as Grafana will send them."""
    return {panel["title"]: [target["expr"] for target in panel.get("targets", [])]
            for panel in document["panels"] if panel.get("type") != "row"}
