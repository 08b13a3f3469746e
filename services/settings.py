"""Scoring-service settings (``EDML_SCORING_*``), with the shared Kafka, topic, storage and
registry settings inside."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from edml.settings import KafkaSettings, RegistrySettings, StorageSettings, TopicSettings

__all__ = ["ScoringSettings"]


class ScoringSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDML_SCORING_", frozen=True)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)

    model_name: str = "trip-duration"  # the model this service serves
    group_id: str = "edml-scoring"  # consumer group of the records (and actuals) topics
    data_dir: Path = Path(".edml/scoring")  # RocksDB model table + model cache; keep it
    # records per micro-batch, at most: 5,000 scored ~28% more records/s than 1,000 on one
    # model and twice as many on 263 keyed ones (bench/keyed.py), at the same latency
    # under 1,000 requests/s (a batch waits batch_wait_s, not for batch_size records)
    batch_size: int = Field(default=5000, ge=1)
    # the same for a family routed by key: a batch makes a model call per key present (~1 ms
    # each among many models, whatever their rows), so a larger one makes fewer per record:
    # 263 zone models scored 27,000 records/s in batches of 5,000, 41,000 in 10,000 and
    # 53,000 in 20,000 (a keyed worker alone, set up as bench/keyed.py does, 2026-12-05)
    keyed_batch_size: int = Field(default=20_000, ge=1)
    # seconds a micro-batch waits to fill; the added latency at low rates
    batch_wait_s: float = Field(default=0.02, gt=0)
    load_attempts: int = Field(default=4, ge=1)  # storage retries, with backoff, per model
    load_backoff_s: float = Field(default=0.5, gt=0)  # first backoff; doubles per attempt
    # megabytes the keyed models of a family routed by key may take (estimated per model
    # from its artifact: services.keyed_models.footprint_bytes); past it the least recently
    # used is evicted, and loads again when its key comes back
    model_memory_mb: int = Field(default=1024, ge=1)
    # join predictions with the actuals topic to measure each version live; off: the actuals
    # topic is not read and nothing is kept
    evaluate: bool = True
    # seconds a prediction waits for its trip's actual duration (the join store's TTL)
    evaluation_horizon_s: float = Field(default=4 * 3600, gt=0)
    # seconds between this worker's drift windows on the evaluations topic (counts since
    # the previous window: a crash loses at most this much of the monitors' counts)
    drift_flush_s: float = Field(default=5.0, gt=0)
    # the join state's changelog topic (created by the worker; default <group_id>-joins)
    join_changelog_topic: str | None = None

    @property
    def join_changelog(self) -> str:
        return self.join_changelog_topic or f"{self.group_id}-joins"
    # seconds the worker waits for a broker that stopped answering (a failover, a stall)
    # before it gives up and exits; outputs in flight are delivered when it is back
    broker_outage_s: float = Field(default=300.0, gt=0)
    web_host: str = "0.0.0.0"
    web_port: int = Field(default=6066, ge=1, le=65_535)
    worker_id: str = Field(default_factory=socket.gethostname)  # names this worker in events
