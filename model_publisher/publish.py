"""``edml publish``: a SavedModel on disk becomes a stored, verified artifact and one event on
the model topic.

Every check that can refuse runs before anything is written, and an upload whose event
cannot be delivered is removed again, so a refusal leaves the bucket and the topic as they
were.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edml.artifacts import artifact_uri, checksum_of, validate_name
from edml.codec import Codec
from edml.contracts import SHADOW, DataWindow, ModelKey, ModelMetadata, RolloutPolicy
from edml.errors import BrokerError, ModelError
from edml.kafka import flush_or_raise, producer, require_broker
from edml.logs import event, get_logger
from edml.model_log import latest_keyed, latest_per_name, read_model_log
from edml.profile import PROFILE_FILE, Profile
from edml.routing import FIELDS, check_field, rows_of_key, source_column
from edml.savedmodel import load_savedmodel, smoke_test
from edml.serving_state import champion, check_candidate, with_candidate
from edml.signature import check_signature
from edml.storage import open_store
from model_publisher.settings import PublisherSettings
from model_publisher.version import git_commit, make_version

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BacktestGate", "KeyVerdict", "Published", "announce", "current_state", "publish",
           "publish_set", "read_training_metadata"]

log = get_logger(__name__)
TRAINING_METADATA = "edml_model.json"  # written by the trainer beside the SavedModel


@dataclass(frozen=True)
class Published:
    metadata: ModelMetadata
    offset: int


def read_training_metadata(model_dir: Path) -> dict[str, Any]:
    """Metrics and data window from the trainer's file; a model without it still publishes."""
    path = model_dir / TRAINING_METADATA
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not readable JSON: {exc}") from exc


def _smoke_test(model_dir: Path) -> Any:
    model = load_savedmodel(model_dir)
    check_signature(model.signature)
    predictions = smoke_test(model, str(model_dir))
    event(log, "model.smoke_tested", path=str(model_dir),
          predictions_s=[round(float(p), 1) for p in predictions])
    return model


def _preflight_broker(settings: PublisherSettings) -> None:
    """The model topic must exist and answer before anything is uploaded."""
    topics = require_broker(settings.kafka, settings.topics.models).topics
    topic = topics.get(settings.topics.models)
    if topic is None or topic.error is not None:
        raise BrokerError(f"model topic {settings.topics.models} is not available at "
                          f"{settings.kafka.bootstrap}: {topic.error if topic else 'missing'}")


def current_state(settings: PublisherSettings, name: str, key: str | None = None
                  ) -> ModelMetadata | None:
    """The latest serving state of ``name``'s fleet model (or of its keyed model ``key``)
    on the model topic, if it has one."""
    entries = read_model_log(settings.kafka, settings.topics.models,
                             Codec.from_settings(settings.registry))
    entry = latest_per_name(entries).get(name) if key is None else \
        latest_keyed(entries, name).get(key)
    return entry.metadata if entry is not None else None


def announce(settings: PublisherSettings, metadata: ModelMetadata,
             at: datetime | None = None) -> int:
    """Produce one metadata event keyed by model name (and key), stamped ``at`` (default:
    now); return
    its offset once delivered. The stamp is when the state took effect: batch scoring as of
    a trip's time reads it."""
    codec = Codec.from_settings(settings.registry)
    return _produce(settings, codec.encode(ModelKey(metadata.name, metadata.key)),
                    codec.encode(metadata), at)


def withdraw_keyed(settings: PublisherSettings, name: str, key: str) -> int:
    """Produce the tombstone of ``name``'s keyed model ``key`` (its trips go to the fleet
    model); return its offset once delivered."""
    codec = Codec.from_settings(settings.registry)
    return _produce(settings, codec.encode(ModelKey(name, key)), None)


def _produce(settings: PublisherSettings, key: bytes, value: bytes | None,
             at: datetime | None = None) -> int:
    delivered: dict[str, Any] = {}

    def on_delivery(error: Any, message: Any) -> None:
        delivered["error"], delivered["offset"] = error, \
            message.offset() if message is not None else None  # a tombstone has len 0

    prod = producer(settings.kafka)
    prod.produce(settings.topics.models, key=key, value=value, on_delivery=on_delivery,
                 timestamp=0 if at is None else int(at.timestamp() * 1000))  # 0: now
    flush_or_raise(prod, settings.kafka.request_timeout_s)
    if delivered.get("error") is not None:
        raise BrokerError(f"model event not delivered: {delivered['error']}")
    return int(delivered["offset"])


@dataclass(frozen=True)
class BacktestGate:
    """Score the candidate and the champion on ``trips`` (the latest ``days`` of history)
    before publishing; a worse candidate is refused, or with ``if_worse`` "shadow" published
    only as a shadow candidate."""

    trips: pd.DataFrame
    days: int
    if_worse: str = "refuse"  # or SHADOW
    cache_dir: Path = Path(".edml/score-cache")


def publish(model_dir: Path, name: str, settings: PublisherSettings, version: str | None = None,
            storage_uri: str | None = None, now: datetime | None = None,
            mode: str | None = None, weight: float = 0.0,
            policy: RolloutPolicy | None = None,
            retrain_request: str | None = None,
            gate: BacktestGate | None = None,
            key: str | None = None, routed_by: str | None = None) -> Published:
    """Upload and announce a version: as the champion (``mode`` None), or as a candidate
    beside the current champion (``mode`` shadow or canary, with ``weight`` and ``policy``).
    ``retrain_request`` names the retrain request the version was trained for; ``gate``
    backtests it against the champion first (its figures join the version's metrics).

    ``key``: a keyed model of the family ``name``, answering the trips its fleet model's
    ``routed_by`` field gives that key: its key's champion, or a candidate beside it (its
    rollout judged on that key's trips alone).
    ``routed_by`` on a fleet model sets the family's routing field (default: the current
    champion's).
    """
    now = now or datetime.now(UTC)
    validate_name("model name", name)
    commit = git_commit(settings.git_commit)
    version = validate_name("version", version or make_version(commit, now))
    if routed_by is not None:
        check_field(routed_by)
    _preflight_broker(settings)  # first: seconds cheaper than loading the model
    current = current_state(settings, name, key)
    label = name if key is None else f"{name}[{key}]"
    # what the backtest judges the version against: its champion; a key's first version,
    # the fleet model that answers the key's trips until then
    judge = current
    if key is not None:
        validate_name("model key", key)
        fleet = current_state(settings, name)
        if routed_by is not None:
            raise ModelError(f"{label}: a keyed model is published without --routed-by "
                             "(that is the fleet model's)")
        if fleet is None or fleet.routed_by is None:
            raise ModelError(f"{name} has no fleet model routed by a field: publish one with "
                             f"--routed-by FIELD first ({', '.join(FIELDS)})")
        routed_by = fleet.routed_by
        judge = current or fleet
        if gate is not None:  # the trips the key's model would answer
            gate = replace(gate, trips=gate.trips[rows_of_key(
                routed_by, gate.trips[source_column(routed_by)].to_numpy(), key)
            ].reset_index(drop=True))
    elif routed_by is None and current is not None:
        routed_by = current.routed_by
    if mode is not None:  # refuse before uploading anything
        check_candidate(current, label, version, mode, weight)
    model = _smoke_test(model_dir)
    backtested: dict[str, float] = {}
    if gate is not None and judge is not None:
        # imported here: the trip reader and pyarrow only for a publish that backtests
        from batch_scoring.backtest import backtest

        result = backtest(model, version, judge.version_only(), gate.trips, settings.storage,
                          gate.cache_dir, policy or RolloutPolicy(), gate.days)
        against = f"the champion {judge.version}" if current is not None else \
            f"the fleet model {judge.version}, which answers its trips now"
        event(log, "model.backtested", model=label, version=version, against=judge.label,
              champion=judge.version, worse=result.worse, result=result.why)
        if result.worse:
            if gate.if_worse != SHADOW or current is None:
                raise ModelError(f"{label} {version} is worse than {against} on the "
                                 f"backtest: {result.why}")
            # judged again on live trips, and never answering one meanwhile
            mode, weight = SHADOW, 0.0
            check_candidate(current, label, version, mode, weight)
        backtested = result.metrics()
    training = read_training_metadata(model_dir)
    profile = Profile.read(model_dir)  # ModelError for a malformed one: refused here
    checksum = checksum_of(model_dir)

    base = storage_uri or settings.storage.uri
    uri = artifact_uri(base, name, version, key)
    store = open_store(settings.storage, uri)
    store.upload_dir(model_dir, uri)  # refuses an existing version
    event(log, "model.uploaded", model=name, version=version, uri=uri, checksum=checksum)

    window = training.get("data_window", {})
    metadata = ModelMetadata(
        name=name, version=version, storage_uri=uri, checksum=checksum,
        signature=model.signature,
        metrics={k: float(v) for k, v in training.get("metrics", {}).items()} | backtested,
        data_window=DataWindow(date.fromisoformat(window.get("start", str(now.date()))),
                               date.fromisoformat(window.get("end", str(now.date())))),
        created_at=now.replace(microsecond=(now.microsecond // 1000) * 1000),
        git_commit=commit,
        profile=PROFILE_FILE if profile is not None else None,
        retrain_request=retrain_request,
        key=key,
        routed_by=routed_by,
    )
    state = champion(metadata, current, "publish") if mode is None else with_candidate(
        current, metadata, mode, weight, policy or RolloutPolicy(), now)
    try:
        offset = announce(settings, state, at=now)
    except BaseException:
        # Nobody was told about this version: remove it, so that a retry can publish it.
        store.delete_dir(uri)
        event(log, "model.upload_withdrawn", logging.WARNING, model=name, version=version)
        raise
    event(log, "model.published", model=metadata.label, version=version, offset=offset,
          topic=settings.topics.models, role=mode or "champion", weight=weight or None)
    return Published(state, offset)


@dataclass(frozen=True)
class KeyVerdict:
    key: str
    verdict: str  # from keys.json: publish, fleet is better, too few trips
    keyed_mae_minutes: float | None
    fleet_mae_minutes: float | None
    published: Published | None  # where the keyed model beat the fleet model


def publish_set(out: Path, name: str, settings: PublisherSettings,
                version: str | None = None) -> tuple[Published, list[KeyVerdict]]:
    """What ``edml train --per`` wrote to ``out``: the fleet model, routed by the field it
    was trained per, then each key's model where it beat the fleet model on that key's
    validation trips (``keys.json``), all under one version."""
    index = out / "keys.json"
    try:
        document = json.loads(index.read_text())
        routed_by, keys = str(document["routed_by"]), list(document["keys"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{index}: not the output of edml train --per ({exc})") from exc
    now = datetime.now(UTC)
    version = version or make_version(git_commit(settings.git_commit), now)
    fleet = publish(out / str(document.get("fleet", "fleet/saved_model")), name, settings,
                    version=version, now=now, routed_by=routed_by)
    verdicts = []
    for entry in keys:
        key = str(entry["key"])
        done = publish(out / "keys" / key / "saved_model", name, settings, version=version,
                       now=now, key=key) if entry["verdict"] == "publish" else None
        verdicts.append(KeyVerdict(key, str(entry["verdict"]), entry.get("keyed_mae_minutes"),
                                   entry.get("fleet_mae_minutes"), done))
    return fleet, verdicts
