"""A model per pickup zone against the single fleet model, on the same real requests.

    .venv/bin/python bench/keyed.py [--seconds 10] [--warmup 5] [--keyed-warmup 60]
                                    [--rounds 2] [--records 6000000] [--budget-mb 1024]
                                    [--rate 1000] [--latency-seconds 20]

Three contenders read one topic of real requests (four partitions, filled once), one
``edml serve`` worker each, taking turns within each round:

  single model   the fleet model alone (no routing): the worker as it serves one model,
                 in batches of up to ``EDML_SCORING_BATCH_SIZE`` (its default, 5,000)
  single, 20k    the same in batches of up to 20,000 (throughput rounds only): what the
                 keyed worker's larger batches would give the single model
  263 zones      the same fleet model routed by pickup_zone_id, with a keyed model for
                 every TLC zone (1..263) behind an ``EDML_SCORING_MODEL_MEMORY_MB`` budget,
                 in batches of up to ``EDML_SCORING_KEYED_BATCH_SIZE`` (its default, 20,000);
                 keyed models load on demand, the fleet model answers until they do

The keyed models are the fleet model answering 10 minutes more (``trainer.variants``): one
artifact uploaded once per key, so each key loads its own copy, as distinct models would.
The keyed contender is measured after a longer warm-up (``--keyed-warmup``): its models
load during it, as they would in the first minute of a deployment. Per round: records/s in
the measured window (from the outputs' timestamps, counted after the worker stopped), and
at its end the worker's RSS, its keyed models in memory, loads and evictions so far, and the
share of predictions made by keyed models. Then, rounds interleaved again, end-to-end
latency (request written to prediction written) at ``--rate`` requests/s: a fresh worker per
contender, its requests paced from its start, the latency of those of the last
``--latency-seconds`` (the keyed contender's first ``--keyed-warmup`` seconds load its
models). Medians over the rounds, with their range.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.common import (
    PARTITIONS,
    fill,
    model_dir,
    prediction_times,
    requests,
    stamp,
    topics_for,
    wait_for_outputs,
    worker_env,
)
from bench.throughput import ROOT, Measured, edml_workers, paced, run_round, stop
from edml.artifacts import artifact_uri
from edml.contracts import ModelMetadata
from edml.local import LocalStack
from edml.local.processes import free_port
from edml.settings import KafkaSettings
from edml.storage import open_store
from model_publisher.publish import announce, publish
from model_publisher.settings import PublisherSettings
from services.probe import wait_ready
from trainer.variants import adding_seconds

ZONES = range(1, 264)
SINGLE, SINGLE_20K, KEYED = "single model", "single, 20k", "263 zones"
_READ = ("edml_keyed_model_loads_total{outcome=\"loaded\"}", "edml_keyed_model_evictions_total",
         "edml_keyed_models_loaded", "edml_keyed_models_bytes",
         "edml_keyed_predictions_total{answered_by=\"keyed\"}",
         "edml_keyed_predictions_total{answered_by=\"fleet\"}")


@dataclasses.dataclass
class Sample:
    measured: Measured
    rss_mb: float
    metrics: dict[str, float]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        body = answer.read().decode()
    found = dict.fromkeys(_READ, 0.0)
    for line in body.splitlines():
        name, _, value = line.rpartition(" ")
        if name in found:
            found[name] = float(value)
    return found


def _publish_zones(model: Path, fleet: ModelMetadata, settings: PublisherSettings,
                   storage_uri: str) -> None:
    """``fleet`` routed by pickup zone, and one keyed model per zone: the first published
    with every check, the others the same artifact uploaded to their own folders and
    announced."""
    announce(settings, dataclasses.replace(fleet, routed_by="pickup_zone_id"))
    keyed_dir = adding_seconds(model, Path(tempfile.mkdtemp(prefix="edml-bench-keyed-"))
                               / "model", 600.0)
    try:
        first = publish(keyed_dir, "bench", settings, version="k1", key="1").metadata
        for zone in ZONES[1:]:
            uri = artifact_uri(storage_uri, "bench", "k1", key=str(zone))
            open_store(settings.storage, uri).upload_dir(keyed_dir, uri)
            announce(settings, dataclasses.replace(first, key=str(zone), storage_uri=uri))
    finally:
        shutil.rmtree(keyed_dir.parent, ignore_errors=True)


def _latency_ms(kafka: KafkaSettings, stack: LocalStack, models_topic: str, work: Path,
               budget_mb: int, rate: int, warmup_s: float, seconds: float) -> np.ndarray:
    """End-to-end latency of each request of the last ``seconds`` of a run at ``rate``
    requests/s through a fresh worker serving ``models_topic``."""
    topics = topics_for(kafka, "latency").model_copy(update={"models": models_topic})
    port = free_port()
    env = worker_env(kafka, topics, stack.storage_uri, work / f"latency-{port}", port) | {
        "EDML_SCORING_MODEL_MEMORY_MB": str(budget_mb)}
    with (work / f"latency-{port}.log").open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "edml.cli", "serve"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_ready(port, proc)
        values = requests(int((warmup_s + seconds) * rate))
        paced(kafka, topics.records, values, rate, topics.dead_letters)
        wait_for_outputs(kafka, topics.predictions, PARTITIONS, len(values), 120)
    finally:
        stop([proc])
    requested, predicted = prediction_times(kafka, topics.predictions, PARTITIONS)
    latency = predicted - requested
    measured: np.ndarray = latency[requested >= requested.min() + warmup_s] * 1000
    return measured


def _latency_summary(latencies: dict[str, list[np.ndarray]], rate: int) -> None:
    def med(values: list[float]) -> str:
        return f"{statistics.median(values):,.1f} ({min(values):,.1f} .. {max(values):,.1f})"

    print(f"\nend-to-end latency at {rate:,} requests/s, ms, median over rounds (range):")
    for name, runs in latencies.items():
        print(f"  {name:<14} p50 {med([float(np.quantile(r, .5)) for r in runs]):>26}"
              f"   p99 {med([float(np.quantile(r, .99)) for r in runs]):>26}"
              f"   ({min(len(r) for r in runs):,}+ requests a round)")


def _summary(samples: dict[str, list[Sample]], budget_mb: int) -> None:
    def med(values: list[float]) -> str:
        return (f"{statistics.median(values):,.0f} ({min(values):,.0f} .. "
                f"{max(values):,.0f})")

    single = statistics.median(s.measured.rate for s in samples[SINGLE])
    print(f"\n{'contender':<14}{'records/s, median (range)':>32}{'vs single':>11}"
          f"{'RSS MB':>24}")
    for name, runs in samples.items():
        rate = statistics.median(s.measured.rate for s in runs)
        print(f"{name:<14}{med([s.measured.rate for s in runs]):>32}{rate / single:>10.2f}x"
              f"{med([s.rss_mb for s in runs]):>24}")
    keyed = samples[KEYED]
    m = {name: [s.metrics[name] for s in keyed] for name in _READ}
    made = [k / max(1.0, k + f) for k, f in zip(m[_READ[4]], m[_READ[5]], strict=True)]
    print(f"\n263 zones at the end of each round's window (budget {budget_mb} MB; counted "
          f"from the worker's start, its warm-up included):")
    print(f"  keyed models in memory {med(m[_READ[2]])}, estimated "
          f"{med([b / 2**20 for b in m[_READ[3]]])} MB")
    print(f"  loads {med(m[_READ[0]])}, evictions {med(m[_READ[1]])}")
    print(f"  predictions made by keyed models: "
          f"{statistics.median(made):.1%} ({min(made):.1%} .. {max(made):.1%})")
    base = statistics.median(s.rss_mb for s in samples[SINGLE])
    print(f"  RSS over the single-model worker's: "
          f"{statistics.median(s.rss_mb for s in keyed) - base:,.0f} MB (budget {budget_mb})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured, per round")
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="seconds after the single model's first output, not measured")
    parser.add_argument("--keyed-warmup", type=float, default=60.0,
                        help="the same for the keyed worker: its models load meanwhile")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per contender (>= 2)")
    parser.add_argument("--records", type=int, default=6_000_000)
    parser.add_argument("--budget-mb", type=int, default=1024)
    parser.add_argument("--rate", type=int, default=1000, help="requests/s, latency rounds")
    parser.add_argument("--latency-seconds", type=float, default=20.0,
                        help="measured, per latency round")
    parser.add_argument("--model", type=Path)
    args = parser.parse_args()
    if args.rounds < 2 or min(args.seconds, args.latency_seconds) < 10:
        parser.error("at least 2 rounds of at least 10 s each: a shorter run is not a figure")

    work = Path(tempfile.mkdtemp(prefix="edml-bench-"))
    model = model_dir(args.model)
    try:
        with LocalStack() as stack:
            kafka = stack.kafka_settings()
            storage = stack.storage_settings()
            single, routed = topics_for(kafka, "single"), topics_for(kafka, "zones")
            fleet = publish(model, "bench", PublisherSettings(
                kafka=kafka, topics=single, storage=storage), version="v1").metadata
            print(f"[{stamp()}] publishing 263 keyed models")
            _publish_zones(model, fleet, PublisherSettings(kafka=kafka, topics=routed,
                                                    storage=storage), stack.storage_uri)
            print(f"[{stamp()}] writing {args.records:,} requests")
            fill(kafka, single.records, requests(args.records))
            samples: dict[str, list[Sample]] = {SINGLE: [], SINGLE_20K: [], KEYED: []}
            for r in range(args.rounds):
                for name, topic, warmup, batch in (
                        (SINGLE, single.models, args.warmup, {}),
                        (SINGLE_20K, single.models, args.warmup,
                         {"EDML_SCORING_BATCH_SIZE": "20000"}),
                        (KEYED, routed.models, args.keyed_warmup, {})):
                    port = free_port()
                    launch = edml_workers(kafka, stack.storage_uri, topic, 1,
                                          EDML_SCORING_WEB_PORT=str(port),
                                          EDML_SCORING_MODEL_MEMORY_MB=str(args.budget_mb),
                                          **batch)
                    seen: list[tuple[float, dict[str, float]]] = []

                    def sample(procs: list[subprocess.Popen[bytes]],
                               seen: list[tuple[float, dict[str, float]]] = seen,
                               port: int = port) -> None:
                        seen.append((_rss_mb(procs[0].pid), _metrics(port)))

                    m = run_round(kafka, name, launch, single.records, work, warmup,
                                  args.seconds, before_stop=sample)
                    rss, metrics = seen[0]
                    samples[name].append(Sample(m, rss, metrics))
                    print(f"[{stamp()}] round {r + 1} {name:<14} {m.rate:>10,.0f} records/s, "
                          f"RSS {rss:,.0f} MB, keyed loads {metrics[_READ[0]]:,.0f}, "
                          f"evictions {metrics[_READ[1]]:,.0f}", flush=True)
            _summary(samples, args.budget_mb)
            latencies: dict[str, list[np.ndarray]] = {SINGLE: [], KEYED: []}
            for r in range(args.rounds):
                for name, topic, warmup in ((SINGLE, single.models, args.warmup),
                                            (KEYED, routed.models, args.keyed_warmup)):
                    ms = _latency_ms(kafka, stack, topic, work, args.budget_mb, args.rate,
                                     warmup, args.latency_seconds)
                    latencies[name].append(ms)
                    print(f"[{stamp()}] latency round {r + 1} {name:<14} p50 "
                          f"{np.quantile(ms, .5):,.1f} ms, p99 {np.quantile(ms, .99):,.1f} ms",
                          flush=True)
            _latency_summary(latencies, args.rate)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
