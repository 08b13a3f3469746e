"""Batch scoring throughput: ``edml score`` in-process and on Spark ``local[2]`` against a
plain pandas loop calling the model in batches of 1,000, on the same rows of real trips;
then the same rows through one streaming worker, for the record.

    .venv/bin/python bench/batch_scoring.py [--rows 1000000] [--rounds 2] [--seconds 10]

The rows are the shared samples' cleaned trips (every month), repeated with new trip ids
up to ``--rows``, as four TripRequest Parquet files. Each round of a contender scores all
of them, again and again until ``--seconds`` have passed; contenders take turns, round by
round. A Spark pass includes its session start: that is what a job on this much history
costs. The stream's rate is measured from the predictions it wrote (first to last), once.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batch_scoring.run import score
from batch_scoring.settings import ScoreSettings
from batch_scoring.trips import REQUEST_FIELDS, read_source
from bench.common import (
    CODEC,
    fill,
    model_dir,
    run_until_outputs,
    stamp,
    topics_for,
    worker_env,
)
from edml.columns import input_columns
from edml.contracts import TripRequest
from edml.local import LocalStack
from edml.local.processes import free_port
from edml.savedmodel import load_savedmodel, usable
from edml.trip_data import default_trip_data
from model_publisher.publish import publish
from model_publisher.settings import PublisherSettings
from trainer.data import resolve_sources

FILES = 4


def history(rows: int, folder: Path) -> list[str]:
    """``rows`` real trips as TripRequest Parquet files, with their actual durations."""
    sources = resolve_sources([default_trip_data().trips], None)
    trips = pd.concat([read_source(s, folder / "cache") for s in sources], ignore_index=True)
    repeated = trips.iloc[np.arange(rows) % len(trips)].reset_index(drop=True)
    repeated["trip_id"] = [f"r{i}" for i in range(rows)]
    paths = []
    bounds = np.linspace(0, rows, FILES + 1).astype(int)
    for k in range(FILES):
        path = folder / f"history-{k}.parquet"
        repeated.iloc[bounds[k]:bounds[k + 1]].to_parquet(path, index=False)
        paths.append(str(path))
    return paths


def pandas_loop(files: list[str], model: Path, out: Path) -> None:
    """What a data scientist writes: read, call the model 1,000 rows at a time, write."""
    loaded = load_savedmodel(model)
    columns = input_columns(loaded.signature)
    out.mkdir(parents=True, exist_ok=True)
    for k, source in enumerate(files):
        frame = pd.read_parquet(source)
        seconds = np.concatenate([loaded.predict(columns.from_frame(frame.iloc[s:s + 1000]))
                                  for s in range(0, len(frame), 1000)])
        frame.assign(predicted_duration_seconds=np.where(usable(seconds), seconds, np.nan))[
            ["trip_id", "pickup_datetime", "predicted_duration_seconds", "duration_seconds"]
        ].to_parquet(out / f"part-{k:05d}.parquet", index=False)


def _round(run: Callable[[], object], rows: int, seconds: float) -> float:
    """Whole passes until ``seconds`` have passed; records per second."""
    started, done = time.monotonic(), 0
    while True:
        run()
        done += rows
        elapsed = time.monotonic() - started
        if elapsed >= seconds:
            return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2, help="rounds per contender (>= 2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="steady work per round")
    parser.add_argument("--model", type=Path)
    parser.add_argument("--skip-stream", action="store_true")
    args = parser.parse_args()
    if args.rounds < 2 or args.seconds < 10:
        parser.error("at least 2 rounds of at least 10 s each: a shorter run is not a figure")
    work = Path(tempfile.mkdtemp(prefix="edml-bench-batch-"))
    try:
        _bench(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # a million rows, three times over


def _bench(args: argparse.Namespace, work: Path) -> None:
    model = model_dir(args.model)
    files = history(args.rows, work)
    print(f"[{stamp()}] {args.rows:,} rows in {len(files)} files under {work}", flush=True)
    with LocalStack() as stack:
        kafka = stack.kafka_settings()
        topics = topics_for(kafka, "batch")
        publish(model, "bench", PublisherSettings(kafka=kafka, topics=topics,
                                                  storage=stack.storage_settings()),
                version="v1")
        local = ScoreSettings(kafka=kafka, topics=topics, storage=stack.storage_settings(),
                              model_name="bench", cache_dir=work / "cache")
        spark = local.model_copy(update={"engine": "spark", "spark_master": "local[2]"})
        contenders: dict[str, Callable[[], object]] = {
            "edml score, local": lambda: score(local, files, work / "out-local", "v1",
                                               progress=False),
            "edml score, spark local[2]": lambda: score(spark, files, work / "out-spark", "v1"),
            "pandas loop, batches of 1,000": lambda: pandas_loop(files, model,
                                                                 work / "out-pandas"),
        }
        for name, run in contenders.items():  # warm-up: imports, the model cache, the JVM
            run()
            print(f"[{stamp()}] warmed up: {name}", flush=True)
        rates: dict[str, list[float]] = {name: [] for name in contenders}
        for r in range(args.rounds):
            for name, run in contenders.items():
                rates[name].append(_round(run, args.rows, args.seconds))
                print(f"[{stamp()}] round {r + 1} {name:<30} {rates[name][-1]:>10,.0f} "
                      "records/s", flush=True)
        stream = None if args.skip_stream else _stream(stack, model, files, work, args.rows)

    base = rates["pandas loop, batches of 1,000"]
    print(f"\n{'contender':<32}{'median records/s':>18}{'rounds':>22}{'vs pandas loop':>22}")
    for name, values in rates.items():
        ratios = [v / b for v, b in zip(values, base, strict=True)]
        print(f"{name:<32}{statistics.median(values):>18,.0f}"
              f"{f'{min(values):,.0f} .. {max(values):,.0f}':>22}"
              f"{f'{statistics.median(ratios):.2f}x ({min(ratios):.2f} .. {max(ratios):.2f})':>22}")
    if stream is not None:
        print(f"{'one streaming worker (once)':<32}{stream:>18,.0f}")


def _stream(stack: LocalStack, model: Path, files: list[str], work: Path, rows: int
            ) -> float:
    """The same rows as TripRequests through one ``edml serve`` worker."""
    kafka = stack.kafka_settings()
    topics = topics_for(kafka, "stream")
    frame = pd.concat(pd.read_parquet(f) for f in files)
    records = frame[list(REQUEST_FIELDS)].to_dict(orient="records")  # Python scalars
    fill(kafka, topics.records, [CODEC.encode_record(TripRequest.SCHEMA, {
        k: (None if pd.isna(v) else v) for k, v in record.items()}) for record in records])
    publish(model, "bench", PublisherSettings(
        kafka=kafka, topics=topics, storage=stack.storage_settings()), version="v1-stream")
    port = free_port()
    print(f"[{stamp()}] the stream: {rows:,} records through one worker", flush=True)
    rate, got = run_until_outputs([sys.executable, "-m", "edml.cli", "serve"],
                                  worker_env(kafka, topics, stack.storage_uri, work / "worker",
                                             port),
                                  kafka, topics, rows, work / "worker.log", 900)
    print(f"[{stamp()}] the stream: {got:,} predictions, {rate:,.0f} records/s", flush=True)
    return rate


if __name__ == "__main__":
    main()
