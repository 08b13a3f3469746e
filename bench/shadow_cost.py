"""What a shadow candidate costs: CPU per record of scoring with the champion alone against
scoring with the champion and a candidate in shadow, on the same records in the same run.

    .venv/bin/python bench/shadow_cost.py [--model DIR] [--seconds 10] [--rounds 2]

Each round runs one contender for ``--seconds`` of steady work: micro-batches of real
requests, the worker's batch size (``EDML_SCORING_BATCH_SIZE``'s default), through
``services.batch.score_batch`` (decode, check, model call(s), encode), every
output produced to a local broker with the worker's producer settings and delivery
callback (the main topic; the shadow topic too for the candidate), as the worker does. The
figure is the process's CPU time (all threads: TensorFlow's and librdkafka's included) per
record. Contenders alternate,
A B A B ..., so a noisy neighbour hurts both alike; medians and the spread over the rounds
are printed beside the ratio. Issue 11's target: at most 1.3x.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from bench.common import CODEC, model_dir, requests, stamp
from bench.contenders.common import BATCH
from edml.kafka import OUTPUT_PRODUCER, ensure_topics, flush_or_raise, producer
from edml.local import LocalStack
from edml.savedmodel import LoadedModel, load_savedmodel
from services.batch import Candidate, score_batch


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a SavedModel (default: train a quick one)")
    parser.add_argument("--seconds", type=float, default=10.0, help="steady work per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per contender (>= 2)")
    args = parser.parse_args()
    if args.rounds < 2 or args.seconds < 10:
        parser.error("at least 2 rounds of at least 10 s each: a shorter run is not a figure")
    model = model_dir(args.model)
    champion = load_savedmodel(model)
    shadow = Candidate(load_savedmodel(model), "v2", "shadow", 0.0)  # a second instance
    values = requests(10 * BATCH)
    batches = [[_Message(v, f"t{i}".encode(), i) for i, v in enumerate(values[s:s + BATCH],
                                                                      start=s)]
               for s in range(0, len(values), BATCH)]
    contenders = {"champion only": None, "champion + shadow": shadow}
    cpu_us: dict[str, list[float]] = {name: [] for name in contenders}
    with LocalStack() as stack:
        prod = producer(stack.kafka_settings(), **OUTPUT_PRODUCER)
        ensure_topics(stack.kafka_settings(), [NewTopic("predictions", 1, 1),
                                               NewTopic("shadow", 1, 1)])
        _round(batches[:1], champion, shadow, prod, 0.0)  # warm both models and the client
        for r in range(args.rounds):
            for name, candidate in contenders.items():
                cpu, n = _round(batches, champion, candidate, prod, args.seconds)
                cpu_us[name].append(cpu / n * 1e6)
                print(f"{stamp()} round {r + 1} {name:<18} {n:>9,} records "
                      f"{cpu / n * 1e6:8.1f} µs CPU/record", flush=True)
    print()
    medians = {name: statistics.median(v) for name, v in cpu_us.items()}
    for name, values_us in cpu_us.items():
        print(f"{name:<18} median {medians[name]:8.1f} µs CPU/record "
              f"(rounds {min(values_us):.1f} .. {max(values_us):.1f})")
    ratio = medians["champion + shadow"] / medians["champion only"]
    ratios = [s / c for s, c in zip(cpu_us["champion + shadow"], cpu_us["champion only"],
                                    strict=True)]
    print(f"shadow / champion only: {ratio:.2f}x (per round {min(ratios):.2f} .. "
          f"{max(ratios):.2f}); target <= 1.3x")


if __name__ == "__main__":
    main()
