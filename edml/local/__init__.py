"""The local stack: real infrastructure on free loopback ports, for the demo, benchmarks and tests.

``LocalStack`` starts a Kafka-protocol broker (Tansu, or testcontainers' Kafka where Docker
runs, or nothing when ``EDML_KAFKA_BOOTSTRAP`` names a cluster) and object storage (a
``file://`` directory, or the GCS emulator), and always stops what it started.
"""

from edml.local.stack import LocalStack, StackSettings

__all__ = ["LocalStack", "StackSettings"]
