"""Two engines, one function: ``score_source`` run over the sources in this process, or
by Spark's executors (``mapInPandas``), each executor process loading a version once from
the same storage URI. Either way each source becomes one part file, byte for byte the
same.

A source file is Spark's unit of work: TLC files differ in columns and types from year to
year, which the trainer's reader already reconciles per file, and a month of trips fits
one executor. History that outgrows one machine is many files."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator, Sequence

import pandas as pd
from rich.progress import Progress

from batch_scoring.score import Plan, SourceResult, score_source
from edml.errors import ConfigError

__all__ = ["run_local", "run_spark"]

_RESULT_SCHEMA = "source string, rows long, scored long"


def run_local(plan: Plan, sources: Sequence[str], progress: bool = True
              ) -> list[SourceResult]:
    results = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("scoring", total=len(sources))
        for index, source in enumerate(sources):
            results.append(score_source(plan, index, source))
            bar.advance(task)
    return results


def run_spark(plan: Plan, sources: Sequence[str], master: str) -> list[SourceResult]:
    """On the Spark master ``master`` (``local[2]``, ``spark://...``, ``yarn``, ``k8s://...``;
    empty: the one spark-submit was given). The executors must reach the sources,
    the model storage and ``plan.out``: on a cluster, shared or object-store paths."""
    if shutil.which("java") is None and "JAVA_HOME" not in os.environ:
        raise ConfigError("the Spark engine needs Java 17 or newer: install Debian's "
                          "openjdk-17-jre-headless (ci/system-packages.sh does, as root) or "
                          "set JAVA_HOME")
    # the executors' Python is this one, with edml and its dependencies installed
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("edml score").config("spark.ui.enabled", "false")
    spark = (builder.master(master) if master else builder).getOrCreate()
    try:
        jobs = spark.createDataFrame(list(enumerate(sources)), "index int, source string") \
            .repartition(max(1, len(sources)), "index")

        def work(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for batch in batches:
                done = [score_source(plan, int(i), str(s))
                        for i, s in zip(batch["index"], batch["source"], strict=True)]
                yield pd.DataFrame({"source": [r.source for r in done],
                                    "rows": [r.rows for r in done],
                                    "scored": [r.scored for r in done]})

        rows = jobs.mapInPandas(work, _RESULT_SCHEMA).collect()
    finally:
        spark.stop()
        _stop_jvm()
    by_source = {row["source"]: SourceResult(row["source"], row["rows"], row["scored"])
                 for row in rows}
    return [by_source[source] for source in sources]


def _stop_jvm() -> None:
    """spark.stop() leaves the driver's JVM running for the rest of this process, which
    may be long (a retrainer's backtest): end it, so the next session starts afresh."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None:
        return
    gateway.shutdown()
    process = getattr(gateway, "proc", None)
    if process is not None:
        process.terminate()
        process.wait(30)
    SparkContext._gateway = SparkContext._jvm = None
