"""Every error edml raises on purpose.

    EdmlError
    ├── ConfigError            settings that cannot work (bad URI, missing credential)
    ├── ContractError          a message does not fit the Avro contracts
    │   ├── DecodeError        bytes that are not a message of the expected schema
    │   ├── EncodeError        a value that does not fit its schema
    │   └── InvalidRecord      a well-formed record whose values cannot be scored
    ├── BrokerError            Kafka unreachable, a topic operation or delivery failed
    ├── RegistryUnavailable    the schema registry does not answer, or fails: records wait
    ├── StorageError           object storage unreachable or refusing
    │   └── ArtifactError      a model artifact is missing, exists already, or fails its checksum
    ├── DataError              training data missing, unreadable or empty after cleaning
    ├── ModelError             a SavedModel that does not load, or whose signature does not fit
    │   └── UnfitModel         a serving version that fails even on the smoke requests
    └── StackError             the local stack (broker, storage emulator) failed to start

Third-party errors are translated where the library is called, with ``raise ... from exc``.
A command-line entry catches only ``EdmlError``; anything else is a bug.
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "BrokerError",
    "ConfigError",
    "ContractError",
    "DataError",
    "DecodeError",
    "EdmlError",
    "EncodeError",
    "InvalidRecord",
    "ModelError",
    "RegistryUnavailable",
    "StackError",
    "StorageError",
    "UnfitModel",
]


class EdmlError(Exception):
    """The root of every error edml raises on purpose."""


class ConfigError(EdmlError):
    pass


class ContractError(EdmlError):
    pass


class DecodeError(ContractError):
    pass


class EncodeError(ContractError):
    pass


class InvalidRecord(ContractError):
    pass


class BrokerError(EdmlError):
    pass


class RegistryUnavailable(EdmlError):
    """Nothing is wrong with the records: they wait in Kafka while the worker retries."""


class StorageError(EdmlError):
    pass


class ArtifactError(StorageError):
    pass


class DataError(EdmlError):
    pass


class ModelError(EdmlError):
    pass


class UnfitModel(ModelError):
    """The version is taken out of service: the previous one serves, and the version stays
    out (also after a restart) until another is published."""


class StackError(EdmlError):
    pass
