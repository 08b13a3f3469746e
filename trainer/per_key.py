"""``edml train --per FIELD``: the fleet model on every trip, then one model per key with
enough trips, trained in parallel processes, each judged against the fleet model on the
same validation trips of its key.

Writes ``OUT/fleet/`` (as ``edml train`` writes ``OUT``), ``OUT/keys/KEY/`` per key trained,
and ``OUT/keys.json``: the routing field, and per key its trip counts, both MAEs and the
verdict ``edml publish --set OUT`` follows (a keyed model is published only where it beats
the fleet model).
"""

from __future__ import annotations

import dataclasses
import json
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

__all__ = ["KEYS_FILE", "KeyResult", "check_routable", "train_per_key"]

KEYS_FILE = "keys.json"


@dataclass(frozen=True)
class KeyResult:
    key: str
    train_trips: int
    validation_trips: int
    verdict: str  # "publish", "fleet is better", "too few trips"
    keyed_mae_minutes: float | None = None
    fleet_mae_minutes: float | None = None


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

    return train_on(split, settings, cleaning, Console(stderr=True, quiet=True)).model_dir


def _mae_minutes(model_dir: Path, split: Split) -> float:
    predicted = load_savedmodel(model_dir).predict(model_inputs(split.valid))
    return float(np.abs(predicted - split.valid["duration_seconds"].to_numpy(float)).mean()
                 / 60)


def train_per_key(split: Split, settings: TrainSettings, cleaning: CleanReport, field: str,
                  console: Console, fleet_dir: Path) -> list[KeyResult]:
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
    results = []
    for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
        valid = int((valid_keys == key).sum())
        if key not in model_dirs:
            results.append(KeyResult(key, count, valid, "too few trips"))
            continue
        # both judged on the key's every validation trip (quick training samples them)
        keyed = _mae_minutes(model_dirs[key], splits[key])
        fleet = _mae_minutes(fleet_dir, splits[key])
        results.append(KeyResult(key, count, valid,
                                 "publish" if keyed < fleet else "fleet is better",
                                 keyed, fleet))
    _write(settings.out, field, results)
    _print(console, field, results, time.monotonic() - started)
    return results


def _write(out: Path, field: str, results: list[KeyResult]) -> None:
    document: dict[str, Any] = {"routed_by": field, "fleet": "fleet/saved_model",
                                "keys": [dataclasses.asdict(r) for r in results]}
    (out / KEYS_FILE).write_text(json.dumps(document, indent=2) + "\n")


def _print(console: Console, field: str, results: list[KeyResult], seconds: float) -> None:
    table = Table(title=f"per {field}: MAE on each key's validation trips (minutes)")
    for column in ("key", "train trips", "validation trips", "keyed", "fleet", "verdict"):
        table.add_column(column, justify="left" if column in ("key", "verdict") else "right")
    for r in sorted(results, key=lambda r: -r.train_trips):
        table.add_row(r.key, f"{r.train_trips:,}", f"{r.validation_trips:,}",
                      "" if r.keyed_mae_minutes is None else f"{r.keyed_mae_minutes:.3f}",
                      "" if r.fleet_mae_minutes is None else f"{r.fleet_mae_minutes:.3f}",
                      r.verdict)
    console.print(table)
    better = sum(r.verdict == "publish" for r in results)
    console.print(f"{better} of {len(results)} keys' models beat the fleet model on their "
                  f"trips; keyed models trained and judged in {seconds:.0f} s")
