"""``edml train --per FIELD``: the fleet model on every trip, then one model per key with
enough trips, trained in parallel processes, each judged against the fleet model on the
same validation trips of its key.

Writes ``OUT/fleet/`` (as ``edml train`` writes ``OUT``), ``OUT/keys/KEY/`` per key trained,
and ``OUT/keys.json``: the routing field, per key its trip counts, both MAEs and the
verdict ``edml publish --set OUT`` follows (a keyed model is published only where it beats
the fleet model), and the routed system's MAE on every validation trip beside the fleet
model's: what publishing the set would change.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from edml.errors import DataError
from edml.routing import route_keys, source_column
from edml.savedmodel import load_savedmodel
from trainer.data import CleanReport
from trainer.fit import Split, model_inputs
from trainer.settings import TrainSettings

__all__ = ["KEYS_FILE", "KeyResult", "Routed", "check_routable", "train_per_key"]

KEYS_FILE = "keys.json"


@dataclass(frozen=True)
class KeyResult:
    key: str
    train_trips: int
    validation_trips: int
    verdict: str  # "publish", "fleet is better", "too few trips"
    keyed_mae_minutes: float | None = None
    fleet_mae_minutes: float | None = None


@dataclass(frozen=True)
class Routed:
    """Every validation trip: the fleet model alone, and the routed system (each key's
    model where its verdict is "publish", the fleet model elsewhere)."""

    validation_trips: int
    fleet_mae_minutes: float
    routed_mae_minutes: float


def check_routable(split: Split, field: str) -> None:
    """Before any training: the trips hold what ``field`` is derived from."""
    column = source_column(field)
    if column not in split.train.columns:
        raise DataError(f"--per {field}: the training trips have no {column} column (the "
                        "TLC's trip files route by zone or borough)")


def _keys(split: Split, field: str) -> tuple[np.ndarray, np.ndarray]:
    column = source_column(field)
    return (route_keys(field, split.train[column].to_numpy()),
            route_keys(field, split.valid[column].to_numpy()))


def _train_one(split: Split, settings: TrainSettings, cleaning: CleanReport) -> Path:
    """One key's model, in a process of its own (TensorFlow is imported there)."""
    from trainer.pipeline import train_on

    # each key is a new Keras model, so its evaluation traces anew: TensorFlow's "retracing"
    # warning would print once per key and means nothing here
    logging.getLogger("tensorflow").setLevel(logging.ERROR)

    return train_on(split, settings, cleaning, Console(stderr=True, quiet=True)).model_dir


def _errors_minutes(model_dir: Path, split: Split) -> np.ndarray:
    """Absolute error per validation trip of ``split``, in minutes."""
    predicted = load_savedmodel(model_dir).predict(model_inputs(split.valid))
    errors: np.ndarray = np.abs(predicted - split.valid["duration_seconds"].to_numpy(float))
    return errors / 60


def train_per_key(split: Split, settings: TrainSettings, cleaning: CleanReport, field: str,
                  console: Console, fleet_dir: Path) -> tuple[list[KeyResult], Routed]:
    """Keys with at least ``settings.min_key_trips`` training trips get a model; every key
    seen is reported. ``fleet_dir`` holds the fleet model, trained on all of ``split``."""
    check_routable(split, field)
    started = time.monotonic()
    train_keys, valid_keys = _keys(split, field)
    keys, counts = np.unique(train_keys[train_keys != ""], return_counts=True)
    enough = {str(k): int(n) for k, n in zip(keys, counts, strict=True)
              if n >= settings.min_key_trips}
    splits = {key: Split(split.train[train_keys == key].reset_index(drop=True),
                         split.valid[valid_keys == key].reset_index(drop=True))
              for key in enough}
    trainable = {key: s for key, s in splits.items() if len(s.valid)}
    console.print(f"training {len(trainable)} keyed model(s) by {field} in "
                  f"{settings.jobs} process(es); {len(keys) - len(trainable)} key(s) below "
                  f"{settings.min_key_trips} training trips (or without validation trips) "
                  "stay on the fleet model")
    # spawn: a forked TensorFlow is not safe; each process trains one key at a time
    with ProcessPoolExecutor(settings.jobs, mp_context=multiprocessing.get_context("spawn")
                             ) as pool:
        futures = {key: pool.submit(_train_one, s, settings.model_copy(
            update={"out": settings.out / "keys" / key}), cleaning)
            for key, s in trainable.items()}
        model_dirs = {key: future.result() for key, future in futures.items()}
    # every model judged on every validation trip of its key (quick training samples them)
    fleet_errors = _errors_minutes(fleet_dir, split)
    routed_errors = fleet_errors.copy()
    results = []
    for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
        rows = valid_keys == key
        if key not in model_dirs:
            results.append(KeyResult(key, count, int(rows.sum()), "too few trips"))
            continue
        keyed_errors = _errors_minutes(model_dirs[key], splits[key])
        keyed, fleet = float(keyed_errors.mean()), float(fleet_errors[rows].mean())
        if keyed < fleet:
            routed_errors[rows] = keyed_errors
        results.append(KeyResult(key, count, int(rows.sum()),
                                 "publish" if keyed < fleet else "fleet is better",
                                 keyed, fleet))
    routed = Routed(len(fleet_errors), float(fleet_errors.mean()), float(routed_errors.mean()))
    _write(settings.out, field, results, routed)
    _print(console, field, results, routed, time.monotonic() - started)
    return results, routed


def _write(out: Path, field: str, results: list[KeyResult], routed: Routed) -> None:
    document: dict[str, Any] = {"routed_by": field, "fleet": "fleet/saved_model",
                                "keys": [dataclasses.asdict(r) for r in results],
                                "all_validation_trips": dataclasses.asdict(routed)}
    (out / KEYS_FILE).write_text(json.dumps(document, indent=2) + "\n")


def _print(console: Console, field: str, results: list[KeyResult], routed: Routed,
           seconds: float) -> None:
    judged = [r for r in results if r.keyed_mae_minutes is not None]
    table = Table(title=f"per {field}: MAE on each key's validation trips (minutes)")
    for column in ("key", "train trips", "validation trips", "keyed", "fleet", "verdict"):
        table.add_column(column, justify="left" if column in ("key", "verdict") else "right")
    for r in sorted(judged, key=lambda r: -r.train_trips):
        table.add_row(r.key, f"{r.train_trips:,}", f"{r.validation_trips:,}",
                      f"{r.keyed_mae_minutes:.3f}", f"{r.fleet_mae_minutes:.3f}", r.verdict)
    console.print(table)
    # a row each would bury the table under hundreds of small zones
    small = sorted((r for r in results if r.keyed_mae_minutes is None),
                   key=lambda r: -r.train_trips)
    if small:
        named = ", ".join(r.key for r in small[:8]) + (", ..." if len(small) > 8 else "")
        console.print(f"{len(small)} key(s) with too few trips ({named}): "
                      f"{sum(r.validation_trips for r in small):,} validation trips stay on "
                      "the fleet model")
    better = sum(r.verdict == "publish" for r in results)
    console.print(f"{better} of {len(judged)} keyed models beat the fleet model on their key's "
                  f"trips; trained and judged in {seconds:.0f} s")
    change = routed.routed_mae_minutes / routed.fleet_mae_minutes - 1
    console.print(f"all {routed.validation_trips:,} validation trips: routed MAE "
                  f"{routed.routed_mae_minutes:.3f} min against the fleet model's "
                  f"{routed.fleet_mae_minutes:.3f} ({change:+.1%})")
