"""Kafka clients configured from settings, in one place.

Everything edml knows about talking to a broker lives here: security pass-through, the
session and heartbeat that decide how long a group join takes (a broker holds a join for
about half the session timeout), and producers that are safe to retry (idempotent, acks=all)
since processing is at-least-once.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupState,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ClusterMetadata,
    NewTopic,
)

from edml.errors import BrokerError
from edml.settings import KafkaSettings, TopicSettings

__all__ = [
    "OUTPUT_PRODUCER",
    "admin",
    "client_config",
    "consumer",
    "ensure_topics",
    "flush_or_raise",
    "group_is_empty",
    "producer",
    "read_partition",
    "read_partitions",
    "require_broker",
    "topic_specs",
]


class _OncePerWindow(logging.Filter):
    """librdkafka repeats a connection failure every reconnect backoff (~50 ms): pass the
    first of each kind, then the same kind at most once per ``window_s``."""

    _VARYING = re.compile(r"\d+ms|\d+ identical error\(s\) suppressed|\[thrd:[^]]*\]")

    def __init__(self, window_s: float = 60.0, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.window_s, self.clock = window_s, clock
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = self._VARYING.sub("", record.getMessage())
        now = self.clock()
        if now - self._last.get(kind, -self.window_s) < self.window_s:
            return False
        self._last[kind] = now
        return True


_LIBRDKAFKA_LOG = logging.getLogger("librdkafka")
_LIBRDKAFKA_LOG.addFilter(_OncePerWindow())
# a client whose failures the caller turns into one clear error of its own
_SILENT_LOG = logging.getLogger("librdkafka.preflight")
_SILENT_LOG.propagate = False
_SILENT_LOG.addHandler(logging.NullHandler())


def client_config(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection and security settings common to every client."""
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap,
        "client.id": kafka.client_id,
        "security.protocol": kafka.security_protocol,
        # fail fast on a broker that does not exist instead of retrying forever
        "socket.connection.setup.timeout.ms": int(kafka.request_timeout_s * 1000),
        # a broker closing idle connections is normal; errors are still logged, through
        # Python logging like everything else
        "log.connection.close": False,
        "logger": _LIBRDKAFKA_LOG,
    }
    if kafka.sasl_mechanism is not None:
        config["sasl.mechanism"] = kafka.sasl_mechanism
    if kafka.sasl_username is not None:
        config["sasl.username"] = kafka.sasl_username
    if kafka.sasl_password is not None:
        config["sasl.password"] = kafka.sasl_password.get_secret_value()
    if kafka.ssl_ca_location is not None:
        config["ssl.ca.location"] = kafka.ssl_ca_location
    return config


# how a scoring loop's outputs are produced: sent within a millisecond, and a delivery report
# only for a failure (the loop acts on nothing else; a report per record costs a Python call)
OUTPUT_PRODUCER = {"linger.ms": 1, "delivery.report.only.error": True}


def producer(kafka: KafkaSettings, **overrides: Any) -> Producer:
    """An idempotent producer with acks=all: a retried send never duplicates or reorders."""
    config = client_config(kafka) | {
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,  # milliseconds; batches sends without adding visible latency
        "delivery.timeout.ms": int(kafka.request_timeout_s * 1000),
    }
    return Producer(config | overrides)


def consumer(kafka: KafkaSettings, group_id: str | None = None, **overrides: Any) -> Consumer:
    """A consumer that commits only what the caller says is done (at-least-once).

    Without ``group_id`` it is a group-less reader for ``assign()`` (a private group id is
    still set, since librdkafka requires one, but never joined or committed).
    """
    config = client_config(kafka) | {
        "group.id": group_id or f"edml-reader-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": kafka.session_timeout_ms,
        "heartbeat.interval.ms": kafka.heartbeat_interval_ms,
        "max.poll.interval.ms": kafka.max_poll_interval_ms,
        "enable.partition.eof": True,
    }
    return Consumer(config | overrides)


def admin(kafka: KafkaSettings) -> AdminClient:
    return AdminClient(client_config(kafka))


def group_is_empty(kafka: KafkaSettings, group_id: str, timeout_s: float = 2.0) -> bool:
    """True when the broker says ``group_id`` has no member now (empty, or never seen);
    False when it has one, or when the broker cannot say (the careful answer)."""
    client = AdminClient(client_config(kafka) | {"logger": _SILENT_LOG})
    try:
        described = client.describe_consumer_groups([group_id], request_timeout=timeout_s)
        state = described[group_id].result(timeout=timeout_s).state
    except Exception:  # KafkaException, a timeout, a broker without DescribeGroups
        return False
    return state in (ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD)


def require_broker(kafka: KafkaSettings, topic: str | None = None) -> ClusterMetadata:
    """The cluster's metadata (of ``topic`` alone, if given), or one BrokerError naming the
    bootstrap address: the first thing a command does, so an unreachable broker is one
    line instead of a client error every 50 ms."""
    errors: list[KafkaError] = []
    client = AdminClient(client_config(kafka) | {"logger": _SILENT_LOG,
                                                  "error_cb": errors.append})
    try:
        return client.list_topics(topic, timeout=kafka.request_timeout_s)
    except KafkaException as exc:
        reason = (errors[-1] if errors else exc.args[0]).str()
        raise BrokerError(
            f"cannot reach the Kafka broker at {kafka.bootstrap} (EDML_KAFKA_BOOTSTRAP) "
            f"within {kafka.request_timeout_s:g} s: {reason}") from exc


def topic_specs(topics: TopicSettings) -> list[NewTopic]:
    """Every edml topic with its configuration.

    The model topic has one partition, so its order is the order of publication, and is
    compacted: the latest metadata per model name is the one that counts.
    """
    n, rf = topics.partitions, topics.replication_factor
    return [
        NewTopic(topics.records, n, rf),
        NewTopic(topics.predictions, n, rf),
        NewTopic(topics.shadow_predictions, n, rf),
        NewTopic(topics.actuals, n, rf),
        NewTopic(topics.dead_letters, n, rf),
        NewTopic(topics.models, 1, rf, config={"cleanup.policy": "compact"}),
        NewTopic(topics.model_events, 1, rf),
        NewTopic(topics.evaluations, 1, rf),
    ]


def ensure_topics(kafka: KafkaSettings, specs: list[NewTopic]) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    client = admin(kafka)  # keep a reference: a collected client cancels its futures
    futures = client.create_topics(specs, request_timeout=kafka.request_timeout_s)
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=kafka.request_timeout_s)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BrokerError(f"cannot create topic {name}: {exc.args[0].str()}") from exc
        except TimeoutError as exc:  # concurrent.futures timeout
            raise BrokerError(
                f"cannot create topic {name} at {kafka.bootstrap}: no answer in "
                f"{kafka.request_timeout_s} s"
            ) from exc
    return created


def flush_or_raise(prod: Producer, timeout_s: float) -> None:
    """Wait until every produced message is delivered, or raise BrokerError."""
    remaining = prod.flush(timeout_s)
    if remaining:
        raise BrokerError(f"{remaining} message(s) not delivered within {timeout_s} s")


def read_partition(
    kafka: KafkaSettings, topic: str, partition: int = 0, timeout_s: float | None = None
) -> Iterator[Message]:
    """Every message of one partition from the beginning to the end the broker reports."""
    return read_partitions(kafka, topic, [partition], timeout_s)


def read_partitions(
    kafka: KafkaSettings, topic: str, partitions: Iterable[int],
    timeout_s: float | None = None,
) -> Iterator[Message]:
    """Every message of the partitions from their beginning to the end the broker reports,
    each partition in order, read by one consumer.

    Group-less (assign, not subscribe), so it never joins a group or commits. The end is
    the partition-EOF signal, which rests on the high watermark of fetch responses: the
    local broker's ListOffsets answer is wrong, its fetch watermark is right.
    """
    timeout_s = kafka.request_timeout_s if timeout_s is None else timeout_s
    waiting = set(partitions)
    if not waiting:
        return
    # a fetch at the end answers at once: the broker would hold it for new data otherwise,
    # and an empty partition's end would cost the default 500 ms
    reader = consumer(kafka, None, **{"fetch.wait.max.ms": 10})
    try:
        reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(waiting)])
        while waiting:
            msg = reader.poll(timeout_s)
            if msg is None:
                raise BrokerError(
                    f"no answer from {kafka.bootstrap} reading {topic}{sorted(waiting)} "
                    f"within {timeout_s} s"
                )
            err = msg.error()
            if err is None:
                if msg.partition() in waiting:  # not past an end already reported
                    yield msg
            elif err.code() == KafkaError._PARTITION_EOF:
                waiting.discard(msg.partition())
            elif err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise BrokerError(f"topic {topic} does not exist at {kafka.bootstrap}")
            elif err.fatal() or not err.retriable():
                raise BrokerError(f"reading {topic}{sorted(waiting)}: {err.str()}")
    finally:
        reader.close()
