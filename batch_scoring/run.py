"""``edml score``: the versions from the model topic, the sources, an engine, and then the
summary (MAE per version and per month) and the HTML report, read back from the parts."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import pyarrow.dataset as ds

from batch_scoring.engines import run_local, run_spark
from batch_scoring.score import Plan, SourceResult
from batch_scoring.settings import ScoreSettings
from batch_scoring.versions import Versions, as_of, one_version
from edml.codec import Codec
from edml.contracts import ModelMetadata
from edml.errors import ConfigError
from edml.model_log import ModelEntry, read_model_log
from edml.report_page import figure, page, table
from trainer.data import parse_months, resolve_sources

__all__ = ["Summary", "find_version", "parts", "score", "summarize"]


@dataclass(frozen=True)
class Summary:
    rows: int
    scored: int  # trips a version existed for
    no_duration: int  # scored, and the model gave no duration
    mae_minutes: dict[str, float]  # per version, where the actual is known
    mae_minutes_by_month: dict[str, dict[str, float]]  # month -> version -> MAE
    trips_by_version: dict[str, int]


def find_version(entries: list[ModelEntry], name: str, version: str) -> ModelMetadata:
    """The version's metadata, wherever the model topic names it (champion, candidate or
    previous)."""
    for entry in reversed(entries):
        state = entry.metadata
        for metadata in (state, state.candidate, state.previous):
            if metadata is not None and metadata.name == name and metadata.key is None \
                    and metadata.version == version:
                return metadata.version_only()
    raise ConfigError(f"the model topic names no version {version!r} of {name!r}")


def score(settings: ScoreSettings, specs: list[str], out: Path, version: str | None,
          months: str | None = None, progress: bool = True) -> Summary:
    entries = read_model_log(settings.kafka, settings.topics.models,
                             Codec.from_settings(settings.registry))
    versions: Versions = as_of(entries, settings.model_name) if version is None else \
        one_version(find_version(entries, settings.model_name, version))
    wanted = parse_months(months) if months else None
    sources = resolve_sources(specs, wanted)
    if not sources:
        raise ConfigError("no trip files to score")
    for stale in out.glob("part-*.parquet*"):  # OUT holds this run's parts, none older
        stale.unlink()
    plan = Plan(versions, settings.storage, settings.cache_dir.resolve(), out.resolve(),
                tuple(str(m) for m in wanted) if wanted else None)
    results = run_spark(plan, sources, settings.spark_master) \
        if settings.engine == "spark" else run_local(plan, sources, progress)
    summary = summarize(out, results)
    (out / "summary.json").write_text(json.dumps(asdict(summary), indent=2) + "\n")
    _report(out, summary, versions, sources)
    return summary


def parts(out: Path) -> list[str]:
    """The part files of a scoring run, in source order."""
    return sorted(str(path) for path in out.glob("part-*.parquet"))


def summarize(out: Path, results: list[SourceResult]) -> Summary:
    frame = ds.dataset(parts(out), format="parquet").to_table(columns=[
        "pickup_datetime", "model_version", "predicted_duration_seconds",
        "actual_duration_seconds"]).to_pandas()
    error = (frame["predicted_duration_seconds"] - frame["actual_duration_seconds"]).abs() / 60
    judged = frame.assign(error=error, month=frame["pickup_datetime"].dt.to_period("M")
                          .astype(str)).dropna(subset=["error"])
    by_month = judged.groupby(["month", "model_version"])["error"].mean()
    return Summary(
        rows=sum(r.rows for r in results), scored=sum(r.scored for r in results),
        no_duration=int(frame["predicted_duration_seconds"].isna().sum()),
        mae_minutes={k: round(float(v), 4) for k, v in
                     judged.groupby("model_version")["error"].mean().items()},
        mae_minutes_by_month={month: {v: round(float(e), 4) for (m, v), e in by_month.items()
                                      if m == month}
                              for month in sorted(judged["month"].unique())},
        trips_by_version={k: int(v) for k, v in frame["model_version"].value_counts()
                          .sort_index().items()},
    )


def _report(out: Path, summary: Summary, versions: Versions, sources: list[str]) -> None:
    monthly = pd.DataFrame(summary.mae_minutes_by_month).T.sort_index()
    body = [f"<h1>Batch scoring of {len(sources)} source file(s)</h1>",
            f"<p>{summary.rows:,} trips read, {summary.scored:,} scored "
            f"({summary.rows - summary.scored:,} predate every version), "
            f"{summary.no_duration:,} without a duration from the model. Errors in minutes, "
            "where the actual duration is known.</p>",
            table(pd.DataFrame({"trips": pd.Series(summary.trips_by_version),
                                "MAE": pd.Series(summary.mae_minutes)}), 3),
            table(_versions_table(versions), 3)]
    if not monthly.empty:
        fig, ax = plt.subplots(figsize=(9, 4))
        monthly.plot(ax=ax, marker="o")
        ax.set(title="MAE per month and version", xlabel="pickup month", ylabel="minutes")
        ax.grid(alpha=0.3)
        body += [figure("MAE per month", fig), table(monthly, 3)]
    (out / "report.html").write_text(page("edml: batch scoring", "\n".join(body)))


def _versions_table(versions: Versions) -> pd.DataFrame:
    rows: list[dict[str, Any]] = [
        {"version": m.version, "serving since (UTC)": "always" if since < 0 else
         str(pd.Timestamp(since, unit="ms")), "trained on": f"{m.data_window.start} .. "
         f"{m.data_window.end}", "offline MAE": m.metrics.get("mae_minutes")}
        for since, m in zip(versions.since_ms, versions.metadata, strict=True)]
    return pd.DataFrame(rows).set_index("version")
