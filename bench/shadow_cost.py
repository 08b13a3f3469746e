"""What a shadow candidate costs: CPU per record of scoring with the champion alone against
scoring with the champion and a candidate in shadow, on the same records in the same run.

    .venv/bin/python bench/shadow_cost.py [--model DIR] [--seconds 10] [--rounds 2]
                                          [--warmup 5] [--records 2500000]

Two measures, each with its contenders alternating A B A B ... (a noisy neighbour hurts
all alike), medians and the spread over the rounds printed beside the ratios. Issue 11's
target: at most 1.3x.

  the scoring path   in this process, ``--seconds`` of steady work a round: micro-batches of
                     real requests, the worker's batch size, through
                     ``services.batch.score_batch`` (decode, check, model call(s), encode),
                     every output produced to the local broker with the worker's producer
                     settings and delivery callback (the main topic; the shadow topic too
                     for the candidate). The figure is this process's CPU time (all
                     threads: TensorFlow's and librdkafka's included) per record. A third
                     contender's candidate answers without computing (the champion's
                     answers, kept): what the shadow costs besides its model's own work.
  the whole worker   one ``edml serve`` worker draining the same backlog of requests, its
                     model topic holding the champion alone, or the champion and the same
                     model as a second version in shadow: what a pod pays, the consumer,
                     the live evaluation's join store and changelog (two predictions a
                     trip in shadow), the drift counts and the metrics included. The figure
                     is the worker process's CPU time (from /proc, all threads) per
                     main-topic prediction in ``--seconds`` after ``--warmup``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from bench.common import CODEC, fill, model_dir, requests, stamp, topics_for
from bench.contenders.common import BATCH
from bench.throughput import edml_workers, run_round
from edml.contracts import ModelSignature
from edml.kafka import OUTPUT_PRODUCER, ensure_topics, flush_or_raise, producer
from edml.local import LocalStack
from edml.savedmodel import LoadedModel, load_savedmodel
from model_publisher.publish import announce, publish
from model_publisher.settings import PublisherSettings
from services.batch import Candidate, score_batch

ALONE, SHADOWED = "champion only", "champion + shadow"
FREE = "shadow, model free"


@dataclass(frozen=True)
class _Kept:
    """A candidate that answers without computing: the champion's answers of a batch,
    kept, so a round with it costs everything a shadow does but its model's work."""

    signature: ModelSignature
    answers: np.ndarray

    def predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        return self.answers[:len(next(iter(columns.values())))]


@dataclass
class _Message:
    """What score_batch needs of a Kafka message."""

    _value: bytes
    _key: bytes
    _offset: int

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def topic(self) -> str:
        return "records"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, int(time.time() * 1000))


def _failed(error: KafkaError | None, msg: object) -> None:
    if error is not None:
        raise SystemExit(f"a delivery failed: {error}")


def _round(batches: list[list[_Message]], champion: LoadedModel,
           candidate: Candidate | None, prod: Producer, seconds: float) -> tuple[float, int]:
    """CPU seconds and records of ``seconds`` of steady scoring; outputs delivered."""
    records, cpu0, wall0 = 0, time.process_time(), time.monotonic()
    while time.monotonic() - wall0 < seconds:
        for batch in batches:
            result = score_batch(batch, champion, "bench", "v1", CODEC,
                                 int(time.time() * 1000), candidate=candidate)
            for out in result.predictions:
                prod.produce("predictions", key=out.key, value=out.value, on_delivery=_failed)
            for out in result.shadow:
                prod.produce("shadow", key=out.key, value=out.value, on_delivery=_failed)
            prod.poll(0)
            records += len(batch)
            if time.monotonic() - wall0 >= seconds:
                break
    flush_or_raise(prod, 60)
    return time.process_time() - cpu0, records


def _scoring_path(stack: LocalStack, model: Path, rounds: int, seconds: float
                  ) -> dict[str, list[float]]:
    """CPU µs per record of each contender's rounds, scoring in this process."""
    champion = load_savedmodel(model)
    shadow = Candidate(load_savedmodel(model), "v2", "shadow", 0.0)  # a second instance
    values = requests(10 * BATCH)
    batches = [[_Message(v, f"t{i}".encode(), i) for i, v in enumerate(values[s:s + BATCH],
                                                                      start=s)]
               for s in range(0, len(values), BATCH)]
    kept = _Kept(champion.signature, score_batch(batches[0], champion, "bench", "v1", CODEC,
                                                 0).champion_seconds)
    contenders = {ALONE: None, SHADOWED: shadow, FREE: Candidate(kept, "v2", "shadow", 0.0)}
    cpu_us: dict[str, list[float]] = {name: [] for name in contenders}
    prod = producer(stack.kafka_settings(), **OUTPUT_PRODUCER)
    ensure_topics(stack.kafka_settings(), [NewTopic("predictions", 1, 1),
                                           NewTopic("shadow", 1, 1)])
    _round(batches[:1], champion, shadow, prod, 0.0)  # warm both models and the client
    for r in range(rounds):
        for name, candidate in contenders.items():
            cpu, n = _round(batches, champion, candidate, prod, seconds)
            cpu_us[name].append(cpu / n * 1e6)
            print(f"{stamp()} round {r + 1} {name:<18} {n:>9,} records "
                  f"{cpu / n * 1e6:8.1f} µs CPU/record", flush=True)
    return cpu_us


def _whole_worker(stack: LocalStack, model: Path, args: argparse.Namespace
                  ) -> dict[str, list[float]]:
    """CPU µs per record of each contender's rounds, one ``edml serve`` worker each."""
    kafka, storage = stack.kafka_settings(), stack.storage_settings()
    alone, shadowed = topics_for(kafka, "alone"), topics_for(kafka, "shadowed")
    v1 = publish(model, "bench", PublisherSettings(kafka=kafka, topics=alone,
                                                   storage=storage), version="v1").metadata
    beside = PublisherSettings(kafka=kafka, topics=shadowed, storage=storage)
    announce(beside, v1)
    publish(model, "bench", beside, version="v2", mode="shadow")  # never decided: no controller
    print(f"{stamp()} writing {args.records:,} requests")
    fill(kafka, alone.records, requests(args.records))
    work = Path(tempfile.mkdtemp(prefix="edml-bench-"))
    cpu_us: dict[str, list[float]] = {ALONE: [], SHADOWED: []}
    try:
        for r in range(args.rounds):
            for name, models in ((ALONE, alone.models), (SHADOWED, shadowed.models)):
                m = run_round(kafka, name, edml_workers(kafka, stack.storage_uri, models, 1),
                              alone.records, work, args.warmup, args.seconds)
                cpu_us[name].append(m.cpu_us)
                print(f"{stamp()} round {r + 1} worker, {name:<18} {m.rate:>9,.0f} records/s "
                      f"{m.cpu_us:8.1f} µs CPU/record", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return cpu_us


def _summary(what: str, cpu_us: dict[str, list[float]]) -> None:
    print(f"\n{what}:")
    medians = {name: statistics.median(v) for name, v in cpu_us.items()}
    for name, values_us in cpu_us.items():
        print(f"  {name:<18} median {medians[name]:8.1f} µs CPU/record "
              f"(rounds {min(values_us):.1f} .. {max(values_us):.1f})")
    for name in (n for n in cpu_us if n != ALONE):
        ratios = [s / c for s, c in zip(cpu_us[name], cpu_us[ALONE], strict=True)]
        print(f"  {name} / {ALONE}: {medians[name] / medians[ALONE]:.2f}x (per round "
              f"{min(ratios):.2f} .. {max(ratios):.2f})"
              + ("; target <= 1.3x" if name == SHADOWED else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a SavedModel (default: train a quick one)")
    parser.add_argument("--seconds", type=float, default=10.0, help="steady work per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per contender (>= 2)")
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="the whole worker: seconds after its first output, not measured")
    parser.add_argument("--records", type=int, default=2_500_000,
                        help="the whole worker's backlog: enough for a round's run")
    args = parser.parse_args()
    if args.rounds < 2 or args.seconds < 10:
        parser.error("at least 2 rounds of at least 10 s each: a shorter run is not a figure")
    model = model_dir(args.model)
    with LocalStack() as stack:
        path = _scoring_path(stack, model, args.rounds, args.seconds)
        worker = _whole_worker(stack, model, args)
    _summary("the scoring path (score_batch and the produce, in one process)", path)
    _summary("the whole worker (edml serve draining a backlog)", worker)


if __name__ == "__main__":
    main()
