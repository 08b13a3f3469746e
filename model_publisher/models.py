"""``edml models list | history | rollback``: the model topic read as the registry it is."""

from __future__ import annotations

import tempfile
from pathlib import Path

from edml.artifacts import checksum_of
from edml.codec import Codec
from edml.errors import ArtifactError, ModelError
from edml.kafka import require_broker
from edml.logs import event, get_logger
from edml.model_log import ModelEntry, latest_per_name, read_model_log
from edml.storage import open_store
from model_publisher.publish import Published, announce
from model_publisher.settings import PublisherSettings

__all__ = ["history", "latest", "rollback", "verify_stored"]

log = get_logger(__name__)


def _log(settings: PublisherSettings) -> list[ModelEntry]:
    require_broker(settings.kafka, settings.topics.models)
    return read_model_log(settings.kafka, settings.topics.models,
                          Codec.from_settings(settings.registry))


def latest(settings: PublisherSettings) -> dict[str, ModelEntry]:
    return latest_per_name(_log(settings))


def history(settings: PublisherSettings, name: str) -> list[ModelEntry]:
    return [entry for entry in _log(settings) if entry.metadata.name == name]


def verify_stored(settings: PublisherSettings, uri: str, checksum: str) -> None:
    """Download the artifact and check it against the checksum its event carries."""
    with tempfile.TemporaryDirectory(prefix="edml-verify-") as tmp:
        local = Path(tmp) / "model"
        open_store(settings.storage, uri).download_dir(uri, local)
        actual = checksum_of(local)
    if actual != checksum:
        raise ArtifactError(f"{uri} does not match its checksum: stored files give {actual}, "
                            f"the event says {checksum}")


def rollback(settings: PublisherSettings, name: str, to_version: str) -> Published:
    """Make an earlier, still stored version current again by re-publishing its metadata."""
    entries = history(settings, name)
    if not entries:
        raise ModelError(f"no model named {name!r} on {settings.topics.models}")
    earlier = [e for e in entries if e.metadata.version == to_version]
    if not earlier:
        versions = ", ".join(dict.fromkeys(e.metadata.version for e in entries))
        raise ModelError(f"{name} has no version {to_version!r} (it has {versions})")
    if entries[-1].metadata.version == to_version:
        raise ModelError(f"{name} {to_version} is already the current version")
    metadata = earlier[-1].metadata
    verify_stored(settings, metadata.storage_uri, metadata.checksum)
    offset = announce(settings, metadata)
    event(log, "model.rolled_back", model=name, version=to_version, offset=offset)
    return Published(metadata, offset)
