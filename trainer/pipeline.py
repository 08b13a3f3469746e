"""``edml train`` from start to end: load, clean, split, fit, evaluate, export, report."""

from __future__ import annotations

import dataclasses
import platform
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from edml.errors import DataError, ModelError
from edml.trip_data import default_trip_data
from trainer.data import CleanReport, clean, load_trips, parse_months, resolve_sources
from trainer.evaluate import Evaluation, evaluate
from trainer.export import OUTPUT, SERVED, SIGNATURE, export_saved_model, predict_seconds
from trainer.fit import Split, fit, model_inputs, split_by_time
from trainer.per_key import check_routable, train_per_key
from trainer.profile import build_profile
from trainer.report import write_report
from trainer.settings import TrainSettings
from trainer.zones import load_zones

__all__ = ["TrainOutcome", "train", "train_on"]

PARITY_ROWS = 1000
# relative; the loaded model must give the in-memory numbers up to float32 rounding
PARITY_TOLERANCE = 1e-5


@dataclass
class TrainOutcome:
    model: keras.Model
    model_dir: Path
    report: Path
    metrics: Path
    evaluation: Evaluation
    seconds: float


def _sources(settings: TrainSettings, console: Console) -> list[str]:
    if settings.data:
        return list(settings.data)
    default = default_trip_data()
    console.print(f"data: {default.label} (pass --data for others)")
    return [default.trips]


def _zones_path(settings: TrainSettings) -> Path:
    return settings.zones if settings.zones is not None else default_trip_data().zones


def _quick(split: Split, rows: int, seed: int) -> Split:
    """A few thousand rows, sampled across the whole window so every season is present."""
    def sample(frame: pd.DataFrame, n: int) -> pd.DataFrame:
        taken = frame.sample(min(n, len(frame)), random_state=seed)
        return taken.sort_values("pickup_datetime").reset_index(drop=True)

    return Split(sample(split.train, rows), sample(split.valid, max(rows // 3, 100)))


class _EpochProgress(keras.callbacks.Callback):  # type: ignore[misc]  # keras is untyped
    def __init__(self, progress: Progress, epochs: int) -> None:
        super().__init__()
        self.progress, self.task = progress, progress.add_task("training", total=epochs)

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = logs or {}
        self.progress.update(self.task, advance=1, description=(
            f"training (val MAE log {logs.get('val_mae_log', float('nan')):.4f})"))


def _check_parity(model: keras.Model, directory: Path, inputs: dict[str, np.ndarray]) -> float:
    """Reload the export and compare it with the in-memory model on the same requests."""
    loaded = tf.saved_model.load(str(directory))
    served = loaded.signatures[SIGNATURE](**{k: tf.constant(v) for k, v in inputs.items()})
    expected = predict_seconds(model, inputs)
    difference = float((np.abs(served[OUTPUT].numpy() - expected) / expected).max())
    if not difference <= PARITY_TOLERANCE:
        raise ModelError(
            f"the exported model differs from the trained one by up to {difference:.2e} "
            "(relative)")
    return difference


def train(settings: TrainSettings, console: Console | None = None) -> TrainOutcome:
    console = console or Console(stderr=True)
    started = time.monotonic()
    months = parse_months(settings.months)
    sources = resolve_sources(_sources(settings, console), months)
    if not sources:
        raise DataError(f"no trip file falls in the months {settings.months}")
    with Progress(*_progress_columns(), console=console) as progress:
        task = progress.add_task("reading trip files", total=len(sources))
        raw = load_trips(sources, settings.cache_dir, lambda _: progress.advance(task))
    trips, cleaning = clean(raw, months)
    split = split_by_time(trips, settings.validation_months)
    if settings.per is None:
        return train_on(split, settings, cleaning, console, started)
    # the fleet model first: every keyed model is judged against it on its key's trips
    check_routable(split, settings.per)
    fleet = train_on(split, settings.model_copy(update={"out": settings.out / "fleet"}),
                     cleaning, console, started)
    train_per_key(split, settings, cleaning, settings.per, console, fleet.model_dir)
    return fleet


def _progress_columns() -> tuple[ProgressColumn, ...]:
    return (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn())


def train_on(split: Split, settings: TrainSettings, cleaning: CleanReport,
             console: Console | None = None, started: float | None = None,
             start_from: keras.Model | None = None) -> TrainOutcome:
    """Fit, evaluate against the baselines, export with its profile, report: on trips
    split elsewhere (``train`` splits files by month, the retrainer a window by day).
    Given ``start_from`` (a champion's model), training continues from its weights."""
    console = console or Console(stderr=True)
    started = time.monotonic() if started is None else started
    zones = load_zones(_zones_path(settings))
    if settings.quick:
        split = _quick(split, settings.quick_rows, settings.seed)
    epochs = 1 if settings.quick else settings.epochs
    valid_inputs = model_inputs(split.valid)
    with Progress(*_progress_columns(), console=console) as progress:
        # a warm start keeps the champion's normalisation and what its months taught it:
        # on a few weeks of trips it does far better in the months after than a model
        # from scratch, which extrapolates wildly in time (bench/warm_start.py)
        result = fit(split, zones, epochs=epochs, batch_size=settings.batch_size,
                     learning_rate=settings.learning_rate if start_from is None
                     else settings.warm_learning_rate, seed=settings.seed,
                     callbacks=[_EpochProgress(progress, epochs)], start_from=start_from)
    valid_predicted = predict_seconds(result.model, valid_inputs)
    evaluation = evaluate(split.train, split.valid, valid_predicted, zones)

    model_dir = settings.out / "saved_model"
    if model_dir.exists():
        shutil.rmtree(model_dir)  # the output folder belongs to this run
    data_window = {"start": str(split.train["pickup_datetime"].min().date()),
                   "end": str(split.valid["pickup_datetime"].max().date())}
    summary: dict[str, Any] = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_window": data_window,
        "train_months": f"{split.train['month'].min()}..{split.train['month'].max()}",
        "validation_months": f"{split.valid['month'].min()}..{split.valid['month'].max()}",
        "rows": {"read": cleaning.rows_in, "after_cleaning": cleaning.rows_out,
                 "train": len(split.train), "validation": len(split.valid)},
        "cleaning": {"dropped": cleaning.dropped},
        "epochs": result.epochs_run, "seed": settings.seed, "quick": settings.quick,
        "start": "scratch" if start_from is None else "warm",
        "zones": zones.source,
    }
    metrics = {f"{metric}": float(value)
               for metric, value in evaluation.overall.loc["model"].items()}
    metrics |= {f"baseline_{name.replace(' ', '_').replace('-', '_')}_mae_minutes":
                float(row["mae_minutes"]) for name, row in evaluation.overall.iterrows()
                if name != "model"}
    export_saved_model(result.model, model_dir, {
        "signature": dataclasses.asdict(SERVED),
        "metrics": metrics,
        **summary,
        "libraries": {"tensorflow": tf.__version__, "keras": keras.__version__,
                      "numpy": np.__version__, "pandas": pd.__version__,
                      "python": platform.python_version()},
    })
    # the reference the workers' drift monitors compare live traffic with
    build_profile(split.train, predict_seconds(result.model, model_inputs(split.train)),
                  split.valid, valid_predicted, zones).write(model_dir)
    parity_rows = {k: v[:PARITY_ROWS] for k, v in valid_inputs.items()}
    summary["export_parity_max_relative_difference"] = _check_parity(result.model, model_dir,
                                                              parity_rows)
    summary["seconds"] = round(time.monotonic() - started, 1)
    report, metrics_path = write_report(settings.out, evaluation, result.history, summary)
    outcome = TrainOutcome(result.model, model_dir, report, metrics_path, evaluation,
                           time.monotonic() - started)
    _print_summary(console, outcome, summary)
    return outcome


def _print_summary(console: Console, outcome: TrainOutcome, summary: dict[str, Any]) -> None:
    table = Table(title="validation " + summary["validation_months"] + " (minutes)")
    for column in ("", "MAE", "RMSE", "RMSLE"):
        table.add_column(column, justify="right" if column else "left")
    for name, row in outcome.evaluation.overall.iterrows():
        table.add_row(str(name), f"{row['mae_minutes']:.3f}", f"{row['rmse_minutes']:.3f}",
                      f"{row['rmsle']:.4f}", style="bold" if name == "model" else None)
    console.print(table)
    for rule, dropped in summary["cleaning"]["dropped"].items():
        console.print(f"  cleaning dropped {dropped:>7,}  {rule}")
    rows = summary["rows"]
    console.print(
        f"trained on {rows['train']:,} trips ({summary['train_months']}), validated on "
        f"{rows['validation']:,}; {rows['read'] - rows['after_cleaning']:,} of {rows['read']:,} "
        f"rows dropped by cleaning; {outcome.seconds:.0f} s\n"
        f"model  {outcome.model_dir}\nreport {outcome.report}\nmetrics {outcome.metrics}"
    )
