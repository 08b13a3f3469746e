"""``edml models list | history | status | promote | rollback``: the model topic read as the
registry it is, and the serving state changed by hand (a manual change always wins: the
rollout controller acts only on the state it finds)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edml.artifacts import checksum_of
from edml.codec import Codec
from edml.contracts import ModelEvent, ModelMetadata, RolloutDecision, RolloutEvidence
from edml.errors import ArtifactError, BrokerError, DecodeError, ModelError
from edml.kafka import read_partition, require_broker
from edml.logs import event, get_logger
from edml.model_log import ModelEntry, latest_per_name, read_model_log
from edml.serving_state import champion, promoted, rolled_back
from edml.storage import open_store
from edml.verdict import evidence_of, summarize, verdict
from model_publisher.publish import Published, announce, current_state, withdraw_keyed
from model_publisher.settings import PublisherSettings

__all__ = ["Status", "history", "latest", "promote", "rollback", "status", "verify_stored",
           "withdraw"]

log = get_logger(__name__)


def _log(settings: PublisherSettings) -> list[ModelEntry]:
    require_broker(settings.kafka, settings.topics.models)
    return read_model_log(settings.kafka, settings.topics.models,
                          Codec.from_settings(settings.registry))


def latest(settings: PublisherSettings) -> dict[str, ModelEntry]:
    return latest_per_name(_log(settings))


def history(settings: PublisherSettings, name: str, key: str | None = None
            ) -> list[ModelEntry]:
    """Every event of ``name``'s fleet model (or of its keyed model ``key``)."""
    return [entry for entry in _log(settings)
            if (entry.metadata.name, entry.metadata.key) == (name, key)]


def verify_stored(settings: PublisherSettings, uri: str, checksum: str) -> None:
    """Download the artifact and check it against the checksum its event carries."""
    with tempfile.TemporaryDirectory(prefix="edml-verify-") as tmp:
        local = Path(tmp) / "model"
        open_store(settings.storage, uri).download_dir(uri, local)
        actual = checksum_of(local)
    if actual != checksum:
        raise ArtifactError(f"{uri} does not match its checksum: stored files give {actual}, "
                            f"the event says {checksum}")


def _state(settings: PublisherSettings, name: str, key: str | None = None) -> ModelMetadata:
    require_broker(settings.kafka, settings.topics.models)
    state = current_state(settings, name, key)
    if state is None:
        label = repr(name) if key is None else f"{name!r} with key {key!r}"
        raise ModelError(f"no model named {label} on {settings.topics.models}")
    return state


def promote(settings: PublisherSettings, name: str, by: str = "promote",
            key: str | None = None) -> Published:
    """The candidate becomes the champion, whatever its evidence says: an operator's call.
    ``key``: the same for the family's keyed model of that key."""
    state = promoted(_state(settings, name, key), by)
    offset = announce(settings, state)
    event(log, "model.promoted", model=state.label, version=state.version, by=by,
          offset=offset,
          previous=state.previous.version if state.previous else None)
    return Published(state, offset)


def withdraw(settings: PublisherSettings, name: str, key: str) -> int:
    """Withdraw ``name``'s keyed model ``key``: the fleet model answers its trips from
    the next batch on; its versions stay stored. Returns the tombstone's offset."""
    state = _state(settings, name, key)
    offset = withdraw_keyed(settings, name, key)
    event(log, "model.withdrawn", model=state.label, version=state.version, offset=offset,
          candidate=state.candidate.version if state.candidate else None)
    return offset


def rollback(settings: PublisherSettings, name: str, to_version: str | None = None,
             key: str | None = None) -> Published:
    """Withdraw the candidate; without one, serve the previous champion again; with
    ``to_version``, make that earlier, still stored version the champion. ``key``: the
    same for the family's keyed model of that key."""
    current = _state(settings, name, key)
    if to_version is None:
        state = rolled_back(current, "rollback")
        if state.version != current.version:  # an older artifact comes back: still there?
            verify_stored(settings, state.storage_uri, state.checksum)
    else:
        known = {m.version: m for e in history(settings, name, key)
                 for m in (e.metadata, e.metadata.candidate) if m is not None}
        if to_version not in known:
            raise ModelError(f"{name} has no version {to_version!r} (it has "
                             f"{', '.join(known)})")
        if current.version == to_version and current.rollout is None:
            raise ModelError(f"{name} {to_version} is already the current version")
        target = known[to_version]
        verify_stored(settings, target.storage_uri, target.checksum)
        state = champion(target, current, "rollback")
    offset = announce(settings, state)
    event(log, "model.rolled_back", model=state.label, version=state.version, offset=offset,
          withdrawn=current.candidate.version if current.candidate else None)
    return Published(state, offset)


@dataclass(frozen=True)
class Status:
    state: ModelMetadata
    # during a rollout: the live evidence so far, every worker's windows merged; its rule
    # is what the policy says now ("gathering" until it says more)
    evidence: RolloutDecision | None = None
    evidence_error: str | None = None  # the evaluations topic could not be read
    # the champion's drift findings and the model's latest retrain request, oldest first
    drift: list[ModelEvent] = field(default_factory=list)
    retrain: ModelEvent | None = None


def status(settings: PublisherSettings, name: str, key: str | None = None) -> Status:
    """The serving state of ``name`` (champion, candidate with mode, weight and policy,
    previous), during a rollout the live evidence so far, and the controller's drift
    findings and retrain request. ``key``: the family's keyed model of that key."""
    state = _state(settings, name, key)
    codec = Codec.from_settings(settings.registry)
    try:
        events = [e for e in (codec.decode(m.value() or b"", ModelEvent) for m in
                              read_partition(settings.kafka, settings.topics.model_events))
                  if (e.model_name, e.model_key) == (name, key)]
    except (BrokerError, DecodeError):
        events = []  # the serving state stands without them
    drift = [e for e in events if e.drift is not None and e.model_version == state.version]
    retrain = next((e for e in reversed(events) if e.retrain is not None), None)
    if state.rollout is None:
        return Status(state, drift=drift, retrain=retrain)
    try:
        windows = [e for e in (codec.decode_if(m.value() or b"", RolloutEvidence) for m in
                               read_partition(settings.kafka, settings.topics.evaluations))
                   if e is not None]
    except (BrokerError, DecodeError) as exc:
        return Status(state, evidence_error=str(exc), drift=drift, retrain=retrain)
    evidence = evidence_of(state, windows)
    if evidence is None:
        return Status(state, drift=drift, retrain=retrain)
    found = verdict(evidence, state.rollout.policy)
    return Status(state, found.decision if found else summarize(evidence,
                                                                state.rollout.policy),
                  drift=drift, retrain=retrain)
