"""Rollouts under load: how long from the evidence that completes a verdict to the
controller's decision, and whether every trip keeps exactly one main-topic prediction
through shadow -> promotion -> canary -> rollback, repeated.

    .venv/bin/python bench/rollout.py [--model DIR] [--rate 300] [--cycles 2]

One ``edml serve`` worker and the rollout controller on the local broker; requests at a
steady ``--rate`` for the whole run, each trip's actual duration one second after its
request. A cycle: the champion is the model answering 10 minutes too long; the trained
model arrives in shadow and must be promoted; then the slow one arrives as a 20% canary
and must be rolled back. Each rollout runs at least 10 s under load.

The decision latency of a rollout is the decision event's time minus the end of the
worker's evidence window that brought the pairs to the count the decision names: the
worker closes a window with the batch that consumed those actuals, so this is the time
from the worker having seen the deciding actual to the decision on the topic. Printed per
rollout, with the median and the spread; issue 11's target: under 2 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CODEC, PARTITIONS, model_dir, stamp, topics_for, worker_env
from controller.controller import running
from controller.settings import ControllerSettings
from edml.contracts import ModelEvent, RolloutEvidence, RolloutPolicy, TripPrediction
from edml.kafka import flush_or_raise, producer, read_partition
from edml.local import LocalStack
from edml.local.processes import free_port, spawn, stop
from edml.settings import KafkaSettings, StorageSettings, TopicSettings
from model_publisher.publish import publish
from model_publisher.settings import PublisherSettings
from services.probe import wait_ready
from services.replay import replay_trips
from trainer.variants import adding_seconds

POLICY = RolloutPolicy(min_paired=300)
ROLLOUT_S = 10.0  # steady load per rollout, at least


def _load(kafka: KafkaSettings, topics: TopicSettings, rate: int, done: threading.Event,
          sent: list[str]) -> None:
    """Requests at ``rate`` until ``done``; each trip's actual one second later."""
    trips = replay_trips(None, "load", shuffle_seed=3)
    prod, pending = producer(kafka), deque[tuple[float, bytes, bytes]]()
    started, i = time.monotonic(), 0
    while not done.is_set() or pending:
        now = time.monotonic()
        if not done.is_set():
            request, actual = trips[i % len(trips)]
            trip_id = f"t{i}"
            prod.produce(topics.records, key=trip_id.encode(),
                         value=CODEC.encode(dataclasses.replace(request, trip_id=trip_id)))
            pending.append((now + 1.0, trip_id.encode(),
                            CODEC.encode(dataclasses.replace(actual, trip_id=trip_id))))
            sent.append(trip_id)
            i += 1
        while pending and pending[0][0] <= now:
            _, key, value = pending.popleft()
            prod.produce(topics.actuals, key=key, value=value)
        prod.poll(0)
        time.sleep(max(0.0, i / rate - (time.monotonic() - started)) if not done.is_set()
                   else 0.05)
    flush_or_raise(prod, 60)


def _decision_latency(kafka: KafkaSettings, topics: TopicSettings, decision: ModelEvent
                      ) -> float:
    d = decision.decision
    assert d is not None
    total = 0
    for msg in read_partition(kafka, topics.evaluations):
        e = CODEC.decode_if(msg.value() or b"", RolloutEvidence)
        if e is None or (e.champion_version, e.candidate_version) != (d.champion_version,
                                                         d.candidate_version):
            continue
        total += e.paired
        if total >= d.paired:
            return (decision.at - e.window_end).total_seconds()
    raise RuntimeError(f"no evidence window reaches {d.paired} pairs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a SavedModel (default: train a quick one)")
    parser.add_argument("--rate", type=int, default=300, help="requests per second")
    parser.add_argument("--cycles", type=int, default=2, help="promotion + rollback cycles")
    args = parser.parse_args()
    if args.cycles < 2:
        parser.error("at least 2 cycles: one decision is not a figure")
    work = Path(tempfile.mkdtemp(prefix="edml-bench-rollout-"))
    good = model_dir(args.model)
    slow = adding_seconds(good, work / "slow", 600.0)
    latencies: dict[str, list[float]] = {"promoted": [], "rolled_back": []}
    sent: list[str] = []
    with LocalStack() as stack:
        kafka = stack.kafka_settings()
        topics = topics_for(kafka, "rollout")
        storage = StorageSettings(uri=f"file://{work}/models")
        publisher = PublisherSettings(kafka=kafka, topics=topics, storage=storage)
        publish(slow, "bench", publisher, version="c0-slow")
        port = free_port()
        worker = spawn([sys.executable, "-m", "edml.cli", "serve"], work / "worker.log",
                       worker_env(kafka, topics, storage.uri, work / "worker", port))
        try:
            wait_ready(port, worker)
            done = threading.Event()
            load = threading.Thread(target=_load, args=(kafka, topics, args.rate, done, sent))
            load.start()
            with running(ControllerSettings(kafka=kafka, topics=topics,
                                            storage=storage)) as controller:
                for cycle in range(1, args.cycles + 1):
                    if cycle > 1:  # the slow model is the champion again
                        publish(slow, "bench", publisher, version=f"c{cycle}-slow")
                    for model, version, mode, weight in (
                            (good, f"c{cycle}-good", "shadow", 0.0),
                            (slow, f"c{cycle}-slow-canary", "canary", 0.2)):
                        started, seen = time.monotonic(), len(controller.decisions)
                        publish(model, "bench", publisher, version=version, mode=mode,
                                weight=weight, policy=POLICY)
                        while len(controller.decisions) == seen:
                            if time.monotonic() - started > 120:
                                raise RuntimeError(f"no decision on {version} in 120 s")
                            time.sleep(0.1)
                        decision = controller.decisions[-1]
                        latency = _decision_latency(kafka, topics, decision)
                        latencies[decision.kind].append(latency)
                        print(f"{stamp()} {version:<18} {decision.kind:<12} "
                              f"{decision.decision.rule if decision.decision else ''}: "
                              f"evidence to decision {latency * 1000:6.0f} ms", flush=True)
                        time.sleep(max(0.0, ROLLOUT_S - (time.monotonic() - started)))
            done.set()
            load.join()
            outcomes = _outcomes(kafka, topics, len(sent))
        finally:
            stop(worker)
    every = [x for values in latencies.values() for x in values]
    print()
    for kind, values in latencies.items():
        print(f"{kind:<12} {len(values)} decisions, evidence to decision median "
              f"{statistics.median(values) * 1000:.0f} ms (spread {min(values) * 1000:.0f} .. "
              f"{max(values) * 1000:.0f} ms)")
    print(f"all          median {statistics.median(every) * 1000:.0f} ms; target < 2,000 ms")
    counts = Counter(outcomes)
    missing = len(set(sent) - set(counts))
    print(f"{len(sent):,} trips at {args.rate}/s: {missing} without a main-topic prediction, "
          f"{sum(1 for c in counts.values() if c > 1)} with more than one")


def _outcomes(kafka: KafkaSettings, topics: TopicSettings, expected: int) -> list[str]:
    """Trip ids of the main-topic predictions, once the worker has caught up."""
    deadline, ids = time.monotonic() + 120, []
    while time.monotonic() < deadline:
        ids = [CODEC.decode(m.value() or b"", TripPrediction).trip_id
               for p in range(PARTITIONS) for m in read_partition(kafka, topics.predictions, p)]
        if len(set(ids)) >= expected:
            break
        time.sleep(2)
    return ids


if __name__ == "__main__":
    main()
