"""Scoring throughput of one edml worker against the same work done three other ways, plus
end-to-end latency at a steady 1,000 requests/s and a model swap under that load.

    .venv/bin/python bench/throughput.py [--n 50000] [--per-record-n 10000] [--model DIR]

Every contender reads the same real requests from its own copy of the records topic on the
same local broker, scores them with the same SavedModel and the same decode/score/encode
code (``services.batch``), and writes TripPredictions; its rate is measured from what it
wrote (first to last ``predicted_at``), so start-up time is not counted. Contenders run one
after another in one run, on the same machine:

  edml       one ``edml serve`` worker (faust app, micro-batch loop on confluent-kafka)
  (a)        a plain confluent-kafka consume-score-produce loop: the practical limit
  (b)        a faust agent that calls the model once per record
  (c)        Quix Streams, per record (in its own venv: quixstreams pins confluent-kafka<2.13)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    CODEC,
    PARTITIONS,
    fill,
    measure,
    model_dir,
    requests,
    stamp,
    topics_for,
    wait_for_outputs,
    worker_env,
)
from edml.contracts import TripPrediction
from edml.kafka import flush_or_raise, producer, read_partition
from edml.local import LocalStack
from edml.local.processes import free_port
from edml.settings import KafkaSettings, TopicSettings
from model_publisher.publish import publish
from model_publisher.settings import PublisherSettings
from services.probe import wait_ready

ROOT = Path(__file__).resolve().parents[1]
QUIX_VENV = ROOT / "bench" / ".venv-quix"


def _run(argv: list[str], env: dict[str, str] | None, kafka: KafkaSettings,
         topics: TopicSettings, n: int, log: Path, timeout_s: float) -> tuple[float, int]:
    with log.open("w") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        got = wait_for_outputs(kafka, topics.predictions, PARTITIONS, n, timeout_s, proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    result = measure(kafka, topics.predictions, PARTITIONS)
    return result.rate, got


def _quix_python() -> Path | None:
    python = QUIX_VENV / "bin" / "python"
    if python.exists():
        return python
    print(f"[{stamp()}] creating {QUIX_VENV} for Quix Streams (bench/requirements-quix.txt)")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r",
                        str(ROOT / "bench" / "requirements-quix.txt")], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "-e",
                        str(ROOT)], check=True)
    except subprocess.CalledProcessError as exc:
        print(f"  Quix Streams venv failed: {exc}; (c) is skipped")
        return None
    return python


def _paced(kafka: KafkaSettings, topic: str, values: list[bytes], rate: int,
           warm_up_topic: str) -> None:
    prod = producer(kafka)
    # The producer's own start must not count as the worker's latency: its metadata, and
    # the idempotent producer's id, which it fetches before its first send.
    prod.list_topics(topic, timeout=10)
    prod.produce(warm_up_topic, value=b"warm-up")
    flush_or_raise(prod, 10)
    started = time.monotonic()
    for i, value in enumerate(values):
        prod.produce(topic, key=f"p{i}".encode(), value=value)
        prod.poll(0)
        ahead = i / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    flush_or_raise(prod, 30)


def _latency_and_swap(kafka: KafkaSettings, stack: LocalStack, model: Path, work: Path,
                      seconds: int, rate: int) -> None:
    topics = topics_for(kafka, "latency")
    settings = PublisherSettings(kafka=kafka, topics=topics, storage=stack.storage_settings())
    publish(model, "bench", settings, version="latency-v1")
    port = free_port()
    env = worker_env(kafka, topics, stack.storage_uri, work / "latency-worker", port)
    with (work / "latency-worker.log").open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "edml.cli", "serve"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_ready(port, proc)
        values = requests(seconds * rate)
        sender = threading.Thread(target=_paced, args=(kafka, topics.records, values, rate,
                                                       topics.dead_letters))
        sender.start()
        time.sleep(seconds / 2)
        publish(model, "bench", settings, version="latency-v2")
        announced = time.time()
        sender.join()
        wait_for_outputs(kafka, topics.predictions, PARTITIONS, len(values), 60)
    finally:
        proc.terminate()
        proc.wait(60)
    rows = []
    for p in range(PARTITIONS):
        for msg in read_partition(kafka, topics.predictions, p):
            r = CODEC.decode_record(msg.value() or b"", TripPrediction.SCHEMA)
            rows.append((r["trip_id"], r["model_version"], r["requested_at"].timestamp(),
                         r["predicted_at"].timestamp()))
    ids = {row[0] for row in rows}
    latency = np.array([row[3] - row[2] for row in rows])
    requested = np.array([row[2] for row in rows])
    first = requested.min()
    warming = latency[requested < first + 3]  # the first batches after the worker's start
    steady = latency[(requested >= first + 3) & (requested < announced - 1)]
    window = latency[(requested >= announced - 1) & (requested <= announced + 5)]
    first_v2 = min((row[3] for row in rows if row[1] == "latency-v2"), default=float("nan"))
    ms = 1000

    def pct(values: np.ndarray, q: float) -> float:
        return float(np.quantile(values, q)) * ms if len(values) else float("nan")

    print(f"\nend-to-end latency at {rate:,} requests/s for {seconds} s (request timestamp "
          f"to prediction timestamp), one worker:")
    print(f"  first 3 s:        p50 {pct(warming, .5):7.1f} ms   p99 {pct(warming, .99):7.1f} ms")
    print(f"  steady:           p50 {pct(steady, .5):7.1f} ms   p99 {pct(steady, .99):7.1f} ms")
    print(f"  around the swap:  p50 {pct(window, .5):7.1f} ms   p99 {pct(window, .99):7.1f} ms"
          f"   ({pct(window, .99) / pct(steady, .99):.2f}x steady p99)")
    missing = len({f"t{i}" for i in range(len(values))} - ids)
    print(f"  model swap v1 -> v2 under load: {missing} of {len(values):,} requests without "
          f"an outcome; first v2 prediction {first_v2 - announced:.2f} s after the event "
          "was delivered")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000, help="records per batch contender")
    parser.add_argument("--per-record-n", type=int, default=10_000,
                        help="records for the per-record contenders (b) and (c)")
    parser.add_argument("--model", type=Path)
    parser.add_argument("--skip-quix", action="store_true")
    parser.add_argument("--latency-seconds", type=int, default=30)
    parser.add_argument("--only-latency", action="store_true",
                        help="skip the throughput contenders")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="edml-bench-"))
    model = model_dir(args.model)
    results: dict[str, tuple[float, int, int]] = {}
    with LocalStack() as stack:
        kafka = stack.kafka_settings()
        print(f"[{stamp()}] broker {stack.bootstrap}; model {model}; logs in {work}")

        def contender(name: str, argv_for: object, n: int, env: dict[str, str] | None = None,
                      setup: object = None) -> None:
            topics = topics_for(kafka, name.split()[0].strip("()"))
            fill(kafka, topics.records, requests(n))
            if setup is not None:
                setup(topics)  # type: ignore[operator]
            argv, env = argv_for(topics)  # type: ignore[operator]
            print(f"[{stamp()}] {name}: {n:,} records")
            rate, got = _run(argv, env, kafka, topics, n, work / f"{name[:12]}.log", 600)
            results[name] = (rate, got, n)
            print(f"           {rate:,.0f} records/s ({got:,} outputs)")

        def edml_worker(topics: TopicSettings) -> tuple[list[str], dict[str, str]]:
            port = free_port()
            return ([sys.executable, "-m", "edml.cli", "serve"],
                    worker_env(kafka, topics, stack.storage_uri, work / f"w-{port}", port))

        def publish_v1(topics: TopicSettings) -> None:
            publish(model, "bench", PublisherSettings(kafka=kafka, topics=topics,
                                                      storage=stack.storage_settings()),
                    version="v1")

        if args.only_latency:
            _latency_and_swap(kafka, stack, model, work, args.latency_seconds, 1000)
            return
        contender("edml worker", edml_worker, args.n, setup=publish_v1)

        def confluent(t: TopicSettings) -> tuple[list[str], None]:
            return ([sys.executable, "-m", "bench.contenders.confluent_loop", kafka.bootstrap,
                     t.records, t.predictions, str(model), str(args.n)], None)

        contender("(a) confluent loop", confluent, args.n)

        def faust_agent(t: TopicSettings) -> tuple[list[str], None]:
            return ([sys.executable, "-m", "bench.contenders.faust_per_record",
                     kafka.bootstrap, t.records, t.predictions, str(model),
                     str(args.per_record_n), str(free_port())], None)

        contender("(b) faust per record", faust_agent, args.per_record_n)

        quix = None if args.skip_quix else _quix_python()
        if quix is not None:
            def quix_app(t: TopicSettings) -> tuple[list[str], None]:
                return ([str(quix), "-m", "bench.contenders.quix_per_record", kafka.bootstrap,
                         t.records, t.predictions, str(model), str(args.per_record_n)], None)

            contender("(c) quix per record", quix_app, args.per_record_n)

        base = results.get("(a) confluent loop", (float("nan"), 0, 0))[0]
        ours = results["edml worker"][0]
        print(f"\n{'contender':<24}{'records':>10}{'records/s':>12}{'vs (a)':>9}{'edml vs':>9}")
        for name, (rate, _, n) in results.items():
            print(f"{name:<24}{n:>10,}{rate:>12,.0f}{rate / base:>8.2f}x{ours / rate:>8.1f}x")
        _latency_and_swap(kafka, stack, model, work, args.latency_seconds, 1000)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
