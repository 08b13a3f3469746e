"""Which version scores which trip: one version for all, or the champion of the moment.

"As of" reads the model topic's history: each event is stamped with the time its state
took effect, and a trip is scored by the champion of the last event stamped at or before
its pickup. Pickups are New York wall-clock times (the TLC's and the contracts'), the
stamps UTC instants; the trips are placed on the UTC line for the comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from edml.contracts import ModelMetadata
from edml.errors import ConfigError
from edml.model_log import ModelEntry

__all__ = ["NEW_YORK", "Versions", "as_of", "one_version", "pickups_utc_ms"]

NEW_YORK = "America/New_York"


@dataclass(frozen=True)
class Versions:
    """Champions in the order they took effect, and since when (UTC ms; the first is from
    the beginning of time for a single version)."""

    since_ms: tuple[int, ...]
    metadata: tuple[ModelMetadata, ...]

    def pick(self, pickups: pd.Series) -> np.ndarray:
        """The index into ``metadata`` of the version that scores each pickup, or -1 where
        no version existed yet."""
        utc_ms = pickups_utc_ms(pickups)
        return np.searchsorted(np.asarray(self.since_ms, dtype=np.int64), utc_ms,
                               side="right") - 1

    def by_version(self) -> dict[str, ModelMetadata]:
        return {m.version: m for m in self.metadata}


def one_version(metadata: ModelMetadata) -> Versions:
    return Versions((np.iinfo(np.int64).min,), (metadata.version_only(),))


def as_of(entries: Sequence[ModelEntry], name: str) -> Versions:
    """The champions of ``name`` in the model topic's history, when each took over."""
    since: list[int] = []
    champions: list[ModelMetadata] = []
    for entry in entries:
        metadata = entry.metadata
        if metadata.name != name or metadata.key is not None:  # the fleet model's history
            continue
        if champions and champions[-1].version == metadata.version:
            continue  # a rollout began or ended: the champion did not change
        since.append(entry.timestamp_ms)
        champions.append(metadata.version_only())
    if not champions:
        raise ConfigError(f"the model topic has no version of {name!r}")
    return Versions(tuple(since), tuple(champions))


def pickups_utc_ms(pickups: pd.Series) -> np.ndarray:
    """New York wall-clock pickups as UTC milliseconds. In the autumn's repeated hour a
    pickup is taken as its first (daylight-time) occurrence; a spring-forward gap time
    moves forward: the TLC's clocks leave no way to tell."""
    local = pd.to_datetime(pickups).dt.tz_localize(
        NEW_YORK, ambiguous=np.ones(len(pickups), dtype=bool), nonexistent="shift_forward")
    utc: np.ndarray = local.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(
        "datetime64[ms]").astype(np.int64)
    return utc
