"""Scoring throughput of edml against the ceiling and its peers, then end-to-end latency at
a steady 1,000 requests/s and a model swap under that load.

    .venv/bin/python bench/throughput.py [--seconds 10] [--warmup 5] [--rounds 2]
                                         [--records 4000000] [--model DIR] [--skip-quix]

Every contender reads the same real requests (one topic of four partitions, filled once,
read from the start by each round's own consumer group) on the same local broker and
writes one output per request to a topic of its own. A round runs the contender until its
first output, then ``--warmup`` seconds, then ``--seconds`` of steady work that is measured,
then stops it and counts, from the outputs' timestamps, what it wrote in those seconds.
Contenders take turns within a round and every contender runs ``--rounds`` times, so a
noisy minute of this shared machine falls on all of them. The table gives each one's
median records/s with the rounds' range, against the ceiling and against edml.

  pass-through       consume -> produce the same bytes, the worker's client settings: the
                     ceiling for any consumer that writes one message per record
  confluent loop     consume -> score_batch -> produce -> commit, no framework
  edml               one ``edml serve`` worker
  edml, batch 1000   the same with micro-batches of 1,000 (the default before 5,000)
  edml, no evaluation  the same with the live evaluation off (its join store and changelog)
  edml, 2 workers    two workers of one group on the four partitions
  quix, batching     Quix Streams at its best: a BatchingSink scoring each checkpoint's
                     batch (in bench/.venv-quix: quixstreams pins confluent-kafka<2.13)
  faust, per record  a faust agent calling the model once per record

All score with ``services.batch.score_batch`` and the same SavedModel, so the figures
compare what surrounds the same work.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    CODEC,
    PARTITIONS,
    cpu_seconds,
    fill,
    model_dir,
    requests,
    stamp,
    topics_for,
    wait_for_outputs,
    worker_env,
)
from edml.contracts import TripPrediction
from edml.kafka import (
    admin,
    consumer,
    ensure_topics,
    flush_or_raise,
    producer,
    read_partition,
    topic_specs,
)
from edml.local import LocalStack
from edml.local.processes import free_port
from edml.settings import KafkaSettings, TopicSettings
from model_publisher.publish import announce, publish
from model_publisher.settings import PublisherSettings
from services.probe import wait_ready

ROOT = Path(__file__).resolve().parents[1]
QUIX_VENV = ROOT / "bench" / ".venv-quix"
CEILING, OURS = "pass-through", "edml"


@dataclass(frozen=True)
class Round:
    """One run of one contender: where it read and wrote, and what it was asked to do."""

    source: str  # the shared requests topic
    sink: str  # this round's own output topic
    group: str  # this round's own consumer group
    work: Path  # this round's own scratch directory (logs, state)


Launch = Callable[[Round], list[tuple[list[str], dict[str, str] | None]]]


@dataclass
class Measured:
    rate: float  # outputs per second of the steady window
    startup_s: float  # launch to first output
    cpu_us: float  # the contender's CPU (all its processes and threads) per output, steady


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _first_output(kafka: KafkaSettings, topic: str, procs: list[subprocess.Popen[bytes]],
                  logs: list[Path], timeout_s: float) -> None:
    """Until any output exists. The local broker's ListOffsets answer is off (the last
    batch's start + 1) but is not 0 once anything is written: enough for this."""
    watcher = consumer(kafka)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for i, proc in enumerate(procs):
                if proc.poll() is not None:
                    raise SystemExit(f"a contender exited early; the end of its log:\n"
                                     f"{_tail(logs[i])}")
            if any(watcher.get_watermark_offsets(TopicPartition(topic, p), 5)[1] > 0
                   for p in range(PARTITIONS)):
                return
            time.sleep(0.05)
    finally:
        watcher.close()
    raise SystemExit(f"no output on {topic} within {timeout_s} s")


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate, and kill what has not exited after 30 s."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _output_times_ms(kafka: KafkaSettings, topic: str) -> np.ndarray:
    return np.array([msg.timestamp()[1] for p in range(PARTITIONS)
                     for msg in read_partition(kafka, topic, p, timeout_s=30)], dtype=np.int64)


def _delete(kafka: KafkaSettings, topic: str) -> None:
    """The round's outputs, gone: the in-memory broker holds every run's bytes."""
    client = admin(kafka)  # kept while its futures run: a collected client cancels them
    for future in client.delete_topics([topic]).values():
        try:
            future.result(timeout=30)
        except Exception as exc:  # a broker without DeleteTopics keeps them: only memory
            print(f"  (could not delete {topic}: {exc})")


def run_round(kafka: KafkaSettings, name: str, launch: Launch, source: str, work: Path,
              warmup_s: float, seconds: float,
              before_stop: Callable[[list[subprocess.Popen[bytes]]], None] | None = None,
              ) -> Measured:
    """One round of one contender; ``before_stop`` sees its processes at the window's end."""
    tag = f"{name.split(',')[0].replace(' ', '-')}-{uuid.uuid4().hex[:6]}"
    rnd = Round(source, f"out-{tag}", f"bench-{tag}", work / tag)
    rnd.work.mkdir(parents=True)
    ensure_topics(kafka, [NewTopic(rnd.sink, PARTITIONS, 1)])
    procs, logs = [], []
    launched = time.monotonic()
    for i, (argv, env) in enumerate(launch(rnd)):
        logs.append(rnd.work / f"process-{i}.log")
        with logs[-1].open("w") as log:
            procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          cwd=ROOT))
    try:
        _first_output(kafka, rnd.sink, procs, logs, 300)
        startup_s = time.monotonic() - launched
        time.sleep(warmup_s)
        pids = [proc.pid for proc in procs]
        cpu0, cpu_from_ms = cpu_seconds(pids), time.time() * 1000
        time.sleep(seconds)
        cpu1, cpu_to_ms = cpu_seconds(pids), time.time() * 1000
        time.sleep(1)
        if before_stop is not None:
            before_stop(procs)
    finally:
        stop(procs)
    # counted after the contender stopped: every output it wrote is in the topic
    times = _output_times_ms(kafka, rnd.sink)
    _delete(kafka, rnd.sink)
    start = times.min() + warmup_s * 1000
    end = start + seconds * 1000
    if times.max() < end:
        raise SystemExit(f"{name} ran out of requests before its window ended: raise "
                         "--records")
    # the CPU's own window, by the wall clock the outputs are stamped with
    outputs_in_cpu_window = int(((times >= cpu_from_ms) & (times < cpu_to_ms)).sum())
    return Measured(float(((times >= start) & (times < end)).sum()) / seconds, startup_s,
                    (cpu1 - cpu0) / max(outputs_in_cpu_window, 1) * 1e6)


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
        print(f"  Quix Streams venv failed: {exc}; its contender is skipped")
        return None
    return python


def edml_workers(kafka: KafkaSettings, storage_uri: str, models_topic: str, count: int,
                 **settings: str) -> Launch:
    """``count`` ``edml serve`` workers of one group, serving what ``models_topic`` says."""
    def launch(r: Round) -> list[tuple[list[str], dict[str, str] | None]]:
        topics = TopicSettings(records=r.source, predictions=r.sink, models=models_topic,
                               shadow_predictions=f"{r.sink}-shadow",
                               actuals=f"{r.sink}-actuals", dead_letters=f"{r.sink}-dead",
                               model_events=f"{r.sink}-events",
                               evaluations=f"{r.sink}-evaluations", partitions=PARTITIONS)
        ensure_topics(kafka, topic_specs(topics))
        return [([sys.executable, "-m", "edml.cli", "serve"],
                 worker_env(kafka, topics, storage_uri, r.work / f"worker-{i}", free_port())
                 | {"EDML_SCORING_GROUP_ID": r.group, "EDML_SCORING_WORKER_ID": f"w{i}"}
                 | settings)
                for i in range(count)]
    return launch


def _contenders(kafka: KafkaSettings, storage_uri: str, model: Path, models_topic: str,
                quix: Path | None) -> dict[str, Launch]:
    py = sys.executable

    def workers(count: int, **settings: str) -> Launch:
        return edml_workers(kafka, storage_uri, models_topic, count, **settings)

    contenders: dict[str, Launch] = {
        CEILING: lambda r: [([py, "-m", "bench.contenders.passthrough", kafka.bootstrap,
                              r.source, r.sink, r.group], None)],
        "confluent loop": lambda r: [([py, "-m", "bench.contenders.confluent_loop",
                                       kafka.bootstrap, r.source, r.sink, r.group,
                                       str(model)], None)],
        OURS: workers(1),
        # the batch size before 5,000 (what the larger batch buys)
        "edml, batch 1000": workers(1, EDML_SCORING_BATCH_SIZE="1000"),
        # what the live evaluation (the join store and its changelog) costs
        "edml, no evaluation": workers(1, EDML_SCORING_EVALUATE="false"),
        "edml, 2 workers": workers(2),
    }
    if quix is not None:
        contenders["quix, batching"] = lambda r: [(
            [str(quix), "-m", "bench.contenders.quix_batching", kafka.bootstrap, r.source,
             r.sink, r.group, str(model), str(r.work / "quix-state")], None)]
    contenders["faust, per record"] = lambda r: [(
        [py, "-m", "bench.contenders.faust_per_record", kafka.bootstrap, r.source, r.sink,
         r.group, str(model), str(free_port()), str(r.work / "faust-data")], None)]
    return contenders


def paced(kafka: KafkaSettings, topic: str, values: list[bytes], rate: int,
          warm_up_topic: str) -> None:
    """``values`` written to ``topic`` at ``rate`` per second."""
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
    # v2's upload and checks happen now, on a scratch model topic: under load only its event
    # is sent, so the swap's figure is the worker's, not the publisher's CPU on the same cores
    scratch = settings.model_copy(update={"topics": topics_for(kafka, "latency-scratch")})
    v2 = publish(model, "bench", scratch, version="latency-v2").metadata
    port = free_port()
    env = worker_env(kafka, topics, stack.storage_uri, work / "latency-worker", port)
    with (work / "latency-worker.log").open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "edml.cli", "serve"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_ready(port, proc)
        values = requests(seconds * rate)
        sender = threading.Thread(target=paced, args=(kafka, topics.records, values, rate,
                                                       topics.dead_letters))
        sender.start()
        time.sleep(seconds / 2)
        announce(settings, v2)
        announced = time.time()
        sender.join()
        wait_for_outputs(kafka, topics.predictions, PARTITIONS, len(values), 60)
    finally:
        stop([proc])
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
    print(f"  model swap v1 -> v2 under load (v2 uploaded beforehand, its event sent at "
          f"half time): {missing} of {len(values):,} requests without an outcome; first v2 "
          f"prediction {first_v2 - announced:.2f} s after the event was delivered")


def _table(rates: dict[str, list[Measured]]) -> None:
    median = {name: statistics.median(m.rate for m in runs) for name, runs in rates.items()}
    print(f"\n{'contender':<20}{'records/s (median)':>20}{'rounds':>22}{'vs ceiling':>12}"
          f"{'edml vs it':>12}{'start-up s':>12}{'CPU µs/rec':>12}")
    for name, runs in rates.items():
        spread = f"{min(m.rate for m in runs):,.0f} .. {max(m.rate for m in runs):,.0f}"
        startup = statistics.median(m.startup_s for m in runs)
        print(f"{name:<20}{median[name]:>20,.0f}{spread:>22}"
              f"{median[name] / median[CEILING]:>11.2f}x{median[OURS] / median[name]:>11.2f}x"
              f"{startup:>12.1f}{statistics.median(m.cpu_us for m in runs):>12.1f}")
    print("(start-up: launch to the first output, requests waiting; model already published;\n"
          " CPU: the contender's processes, all threads, per output in the steady window)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured, per round")
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="seconds after a contender's first output, not measured")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per contender (>= 2)")
    parser.add_argument("--records", type=int, default=4_000_000,
                        help="requests in the shared topic: enough for the fastest contender")
    parser.add_argument("--model", type=Path)
    parser.add_argument("--skip-quix", action="store_true")
    parser.add_argument("--only", action="append", default=[],
                        help="a contender to run besides the ceiling and edml (repeat it; "
                             "names hold commas, e.g. 'edml, no evaluation')")
    parser.add_argument("--latency-seconds", type=int, default=30)
    parser.add_argument("--only-latency", action="store_true",
                        help="skip the throughput contenders")
    args = parser.parse_args()
    if args.rounds < 2 or args.seconds < 10:
        parser.error("at least 2 rounds of at least 10 s each: a shorter run is not a figure")

    work = Path(tempfile.mkdtemp(prefix="edml-bench-"))
    model = model_dir(args.model)
    try:
        with LocalStack() as stack:
            kafka = stack.kafka_settings()
            print(f"[{stamp()}] broker {stack.bootstrap}; model {model}; logs in {work}")
            if not args.only_latency:
                shared = topics_for(kafka, "shared")
                publish(model, "bench", PublisherSettings(
                    kafka=kafka, topics=shared, storage=stack.storage_settings()), version="v1")
                print(f"[{stamp()}] writing {args.records:,} requests")
                fill(kafka, shared.records, requests(args.records))
                contenders = _contenders(kafka, stack.storage_uri, model, shared.models,
                                         None if args.skip_quix else _quix_python())
                if args.only:
                    keep = {CEILING, OURS, *args.only}
                    contenders = {k: v for k, v in contenders.items() if k in keep}
                rates: dict[str, list[Measured]] = {name: [] for name in contenders}
                for r in range(args.rounds):
                    for name, launch in contenders.items():
                        m = run_round(kafka, name, launch, shared.records, work, args.warmup,
                                   args.seconds)
                        rates[name].append(m)
                        print(f"[{stamp()}] round {r + 1} {name:<18} {m.rate:>10,.0f} "
                              f"records/s, {m.cpu_us:.1f} µs CPU/record (first output "
                              f"{m.startup_s:.1f} s after launch)", flush=True)
                _table(rates)
            _latency_and_swap(kafka, stack, model, work, args.latency_seconds, 1000)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
