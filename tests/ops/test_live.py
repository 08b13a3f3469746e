"""The dashboard and the alerts against a real Prometheus scraping a real ``edml serve``
under load on the local stack: every panel's query returns data, every alert expression
runs, and the alerts for refused model loads and for a stopped worker go off when those
faults are injected, and not before.

The alerts are the committed rules, loaded unchanged: the refused-load alert holds for no
time and fires at once; the worker-down alert is seen pending, the first step of its
2-minute hold, whose length the promtool unit tests pin (test_rules.py)."""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from edml.artifacts import artifact_uri
from edml.kafka import flush_or_raise, producer
from edml.settings import KafkaSettings, StorageSettings, TopicSettings
from model_publisher.publish import announce, publish
from model_publisher.settings import PublisherSettings
from ops.alerts import RULES, rules
from ops.dashboard import DASHBOARD, panel_queries
from tests.ops.prometheus import Prometheus, binary
from tests.services.workers import CODEC, Workers, real_trips, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.gcs, pytest.mark.tf, pytest.mark.timeout(300)]

# panels that show data only once a version was refused: checked after that fault
_AFTER_REFUSAL = {"Refused versions"}
# the window Grafana's $__rate_interval would be at this test's 1 s scrapes, and then some
_RATE_INTERVAL = "10s"


class Traffic(threading.Thread):
    """Real trips at about 200 a second: each request, its actual duration half a second
    later, and one malformed record in 200."""

    def __init__(self, kafka: KafkaSettings, topics: TopicSettings) -> None:
        super().__init__(daemon=True)
        self._kafka, self._topics = kafka, topics
        self.stop = threading.Event()

    def run(self) -> None:
        prod = producer(self._kafka)
        trips, pending = real_trips(20_000, "live"), []
        for chunk, start in enumerate(range(0, len(trips), 50)):
            if self.stop.is_set():
                break
            batch = trips[start:start + 50]
            for request, _ in batch:
                prod.produce(self._topics.records, key=request.trip_id.encode(),
                             value=CODEC.encode(request))
            if chunk % 4 == 0:
                prod.produce(self._topics.records, key=f"bad-{chunk}".encode(),
                             value=b"\x00not avro")
            pending.append(batch)
            if len(pending) > 2:
                for _, actual in pending.pop(0):
                    prod.produce(self._topics.actuals, key=actual.trip_id.encode(),
                                 value=CODEC.encode(actual))
            prod.poll(0)
            time.sleep(0.25)
        flush_or_raise(prod, 30)


def _queries(titles: set[str] | None = None, skip: set[str] = frozenset()) -> dict[str, str]:
    """Each dashboard query, as Grafana would send it at this test's scrape interval."""
    document = yaml.safe_load(DASHBOARD.read_text())
    return {f"{title} #{i}": expr.replace("$__rate_interval", _RATE_INTERVAL)
            for title, exprs in panel_queries(document).items()
            if (titles is None or title in titles) and title not in skip
            for i, expr in enumerate(exprs)}


def _without_data(prometheus: Prometheus, queries: dict[str, str]) -> list[str]:
    return [name for name, expr in queries.items() if not prometheus.query(expr)]


def test_every_panel_shows_data_and_the_alerts_fire_on_their_faults_only(
    quick_model: Path, publisher: PublisherSettings, workers: Workers,
    kafka: KafkaSettings, topics: TopicSettings, gcs: StorageSettings, tmp_path: Path,
) -> None:
    binary("prometheus")
    v1 = publish(quick_model, "trips", publisher, version="v1").metadata
    worker = workers.make("w1").start()
    worker.wait_ready("v1")
    publish(quick_model, "trips", publisher, version="v2", mode="shadow")
    traffic = Traffic(kafka, topics)
    traffic.start()
    try:
        with Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{worker.port}"],
                        [RULES]) as prometheus:
            # every expression is valid PromQL that this Prometheus runs
            for rule in rules().values():
                prometheus.query(rule["expr"])

            before = _queries(skip=_AFTER_REFUSAL)
            wait_for(lambda: not _without_data(prometheus, before), 120,
                     "every panel's data (those that need a refusal aside)")
            # A rule evaluated while a counter has one sample sees no rate: EdmlNoPredictions
            # may be pending for an evaluation or two after Prometheus starts (its 5 minutes'
            # hold is there for that). Once every rate exists, nothing is active.
            wait_for(lambda: prometheus.active_alerts() == {}, 30, "the start-up to settle")
            for _ in range(5):  # five evaluations of every rule, on a healthy worker
                assert prometheus.active_alerts() == {}
                time.sleep(1)

            announce(publisher, dataclasses.replace(v1, version="v3-missing", storage_uri=(
                artifact_uri(gcs.uri, "trips", "v3-missing"))))  # never uploaded
            wait_for(lambda: "EdmlModelLoadRefused" in prometheus.active_alerts(), 60,
                     "the refused-load alert")
            active = prometheus.active_alerts()
            assert active.keys() == {"EdmlModelLoadRefused"}
            # it holds for no time: firing at once
            assert [(a["model_version"], a["kind"], a["state"])
                    for a in active["EdmlModelLoadRefused"]] == [
                ("v3-missing", "ArtifactError", "firing")]
            assert not _without_data(prometheus, _queries(_AFTER_REFUSAL))

            worker.stop(signal.SIGKILL)
            wait_for(lambda: "EdmlWorkerDown" in prometheus.active_alerts(), 30,
                     "the worker-down alert")
            down = prometheus.active_alerts()["EdmlWorkerDown"]
            # pending for its 2 minutes, then firing: the hold is pinned by promtool's tests
            assert [(a["instance"], a["state"]) for a in down] == [
                (f"127.0.0.1:{worker.port}", "pending")]
    finally:
        traffic.stop.set()
        traffic.join(60)
