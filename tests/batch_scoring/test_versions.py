"""Which version scores which trip: as of its pickup, the champion of the last model event
stamped at or before it; New York wall-clock pickups placed on the UTC line."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pandas as pd
import pytest

from batch_scoring.versions import as_of, one_version
from edml.contracts import ModelMetadata, Rollout, RolloutPolicy
from edml.errors import ConfigError
from edml.model_log import ModelEntry
from edml.samples import sample_events

BASE = next(v for v, _ in sample_events() if isinstance(v, ModelMetadata)).version_only()


def _entry(offset: int, version: str, at: datetime, name: str = BASE.name,
           candidate: str | None = None) -> ModelEntry:
    metadata = dataclasses.replace(BASE, name=name, version=version)
    if candidate is not None:
        metadata = dataclasses.replace(metadata, rollout=Rollout(
            dataclasses.replace(BASE, version=candidate), "shadow", 0.0, at, RolloutPolicy()))
    return ModelEntry(offset, metadata, int(at.timestamp() * 1000))


def _versions_of(history: list[ModelEntry], *pickups: str) -> list[str | None]:
    versions = as_of(history, BASE.name)
    picked = versions.pick(pd.Series(pd.to_datetime(list(pickups), format="ISO8601")))
    return [versions.metadata[i].version if i >= 0 else None for i in picked]


def test_each_pickup_gets_the_champion_of_the_last_event_at_or_before_it() -> None:
    history = [_entry(0, "v1", datetime(2019, 10, 3, 12, tzinfo=UTC)),
               _entry(1, "v2", datetime(2019, 10, 15, 12, tzinfo=UTC))]  # 08:00 in New York
    assert _versions_of(history, "2019-10-03 07:59:59.999", "2019-10-03 08:00:00",
                        "2019-10-15 07:59:59.999", "2019-10-15 08:00:00",
                        "2019-10-31 23:00") == [None, "v1", "v1", "v2", "v2"]


def test_winter_pickups_are_five_hours_behind_utc() -> None:
    history = [_entry(0, "v1", datetime(2020, 1, 1, tzinfo=UTC)),
               _entry(1, "v2", datetime(2020, 1, 15, 12, tzinfo=UTC))]  # 07:00 in New York
    assert _versions_of(history, "2020-01-15 06:59", "2020-01-15 07:00") == ["v1", "v2"]


def test_a_rollout_is_not_a_change_of_champion_and_other_models_do_not_count() -> None:
    history = [_entry(0, "v1", datetime(2019, 10, 3, tzinfo=UTC)),
               _entry(1, "v1", datetime(2019, 10, 5, tzinfo=UTC), candidate="v2"),
               _entry(2, "x9", datetime(2019, 10, 6, tzinfo=UTC), name="other"),
               _entry(3, "v2", datetime(2019, 10, 9, tzinfo=UTC))]
    versions = as_of(history, BASE.name)
    assert [m.version for m in versions.metadata] == ["v1", "v2"]
    assert _versions_of(history, "2019-10-06 12:00", "2019-10-09 12:00") == ["v1", "v2"]


def test_a_rolled_back_version_is_the_champion_again_from_its_event_on() -> None:
    history = [_entry(0, "v1", datetime(2019, 10, 1, tzinfo=UTC)),
               _entry(1, "v2", datetime(2019, 10, 10, tzinfo=UTC)),
               _entry(2, "v1", datetime(2019, 10, 20, tzinfo=UTC))]
    assert _versions_of(history, "2019-10-05", "2019-10-15", "2019-10-25") == ["v1", "v2",
                                                                               "v1"]


def test_one_version_scores_every_trip_and_no_history_is_a_clear_error() -> None:
    versions = one_version(BASE)
    assert list(versions.pick(pd.Series(pd.to_datetime(["1990-01-01", "2030-01-01"])))) == \
        [0, 0]
    with pytest.raises(ConfigError, match="no version of 'nothing'"):
        as_of([_entry(0, "v1", datetime(2019, 10, 1, tzinfo=UTC))], "nothing")
