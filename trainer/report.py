"""The evaluation report: ``report.html`` for people (plots inline), ``metrics.json`` for
machines."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from edml.report_page import figure, page, table
from trainer.evaluate import Evaluation

__all__ = ["write_report"]


def _predicted_vs_actual(ev: Evaluation) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 5.5))
    actual, predicted = ev.actual / 60, ev.predicted / 60
    hb = ax.hexbin(actual, predicted, gridsize=60, extent=(0, 60, 0, 60), bins="log", mincnt=1,
                   cmap="viridis")
    ax.plot([0, 60], [0, 60], color="crimson", lw=1, label="perfect")
    ax.set(xlabel="actual minutes", ylabel="predicted minutes", xlim=(0, 60), ylim=(0, 60),
           title="Predicted vs actual (validation)")
    ax.legend(loc="upper left")
    fig.colorbar(hb, label="trips (log)")
    return fig


def _by(table: pd.DataFrame, title: str, xlabel: str, kind: str) -> Figure:
    fig, ax = plt.subplots(figsize=(8, 4))
    columns = [c for c in table.columns if c != "trips"]
    if kind == "line":
        for column in columns:
            ax.plot(table.index, table[column], marker="o", ms=3, label=column)
        ax.set_xticks(range(0, 24, 2))
    else:
        positions = np.arange(len(table))
        width = 0.8 / len(columns)
        for i, column in enumerate(columns):
            ax.bar(positions + i * width, table[column], width, label=column)
        ax.set_xticks(positions + 0.4 - width / 2, table.index, rotation=20)
    ax.set(title=title, xlabel=xlabel, ylabel="MAE, minutes")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def _curves(history: dict[str, list[float]]) -> Figure:
    fig, ax = plt.subplots(figsize=(8, 4))
    for key, values in history.items():
        if "loss" in key or "mae" in key:
            ax.plot(range(1, len(values) + 1), values, marker="o", ms=3, label=key)
    ax.set(title="Training curves (log seconds)", xlabel="epoch", ylabel="value")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def write_report(out: Path, ev: Evaluation, history: dict[str, list[float]],
                 summary: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``report.html`` and ``metrics.json`` into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    metrics = {
        "overall": ev.overall.to_dict(orient="index"),
        "mae_minutes_by_hour": ev.by_hour.to_dict(orient="index"),
        "mae_minutes_by_borough": ev.by_borough.to_dict(orient="index"),
        "history": history,
        **summary,
    }
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2, default=str) + "\n")

    images = {
        "Predicted vs actual": _predicted_vs_actual(ev),
        "Error by hour of day": _by(ev.by_hour, "MAE by pickup hour", "hour (New York)", "line"),
        "Error by borough": _by(ev.by_borough, "MAE by pickup borough", "borough", "bar"),
        "Training curves": _curves(history),
    }
    facts = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in summary.items() if not isinstance(v, dict | list))
    cleaning = summary.get("cleaning", {})
    dropped = "".join(f"<tr><th>{html.escape(rule)}</th><td>{n:,}</td></tr>"
                      for rule, n in cleaning.get("dropped", {}).items())
    figures = "".join(figure(title, fig) for title, fig in images.items())
    report_path = out / "report.html"
    body = f"""<h1>Trip-duration model: evaluation</h1>
<p>Validation on the latest months, against two baselines computed in the same run.
Errors in minutes.</p>
{table(ev.overall)}
<table class="f">{facts}</table>
<h2>Cleaning</h2><table class="f">{dropped}</table>
{figures}
<h2>By hour</h2>{table(ev.by_hour, 2)}
<h2>By borough</h2>{table(ev.by_borough, 2)}"""
    report_path.write_text(page("edml: trip-duration model report", body))
    return report_path, metrics_path
