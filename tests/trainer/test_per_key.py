"""``edml train --per`` and ``edml publish --set``: a model per key where it has the trips,
judged against the fleet model on the key's own validation trips, published only where it
beats it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from edml.codec import Codec
from edml.errors import DataError
from edml.model_log import latest_keyed, latest_per_name, read_model_log
from model_publisher.publish import publish_set
from model_publisher.settings import PublisherSettings
from trainer.pipeline import train
from trainer.settings import TrainSettings


def test_keys_with_enough_trips_get_a_model_judged_against_the_fleet_and_only_better_ones_publish(
    tmp_path: Path, publisher: PublisherSettings,
) -> None:
    settings = TrainSettings(quick=True, quick_rows=1500, out=tmp_path / "out",
                             months="2019-05..2019-10", validation_months=1,
                             per="pickup_borough", min_key_trips=1000, jobs=2)
    train(settings, Console(stderr=True, quiet=True))

    document = json.loads((tmp_path / "out" / "keys.json").read_text())
    assert document["routed_by"] == "pickup_borough"
    keys = {entry["key"]: entry for entry in document["keys"]}
    assert keys["manhattan"]["train_trips"] > keys["queens"]["train_trips"] >= 1000
    for entry in keys.values():
        trained = (tmp_path / "out" / "keys" / entry["key"] / "saved_model").is_dir()
        assert trained == (entry["train_trips"] >= 1000)
        if trained:
            better = entry["keyed_mae_minutes"] < entry["fleet_mae_minutes"]
            assert entry["verdict"] == ("publish" if better else "fleet is better")
        else:
            assert entry["verdict"] == "too few trips" and entry["keyed_mae_minutes"] is None
    # the routed system = the fleet model's errors with each published key's swapped in
    overall = document["all_validation_trips"]
    n = overall["validation_trips"]
    assert n >= sum(e["validation_trips"] for e in keys.values())
    gain = sum((e["fleet_mae_minutes"] - e["keyed_mae_minutes"]) * e["validation_trips"]
               for e in keys.values() if e["verdict"] == "publish")
    assert overall["routed_mae_minutes"] == pytest.approx(overall["fleet_mae_minutes"] - gain / n)

    fleet, verdicts = publish_set(tmp_path / "out", "trips", publisher, version="v1")
    assert fleet.metadata.routed_by == "pickup_borough"
    entries = read_model_log(publisher.kafka, publisher.topics.models, Codec())
    assert latest_per_name(entries)["trips"].metadata.version == "v1"
    published = {key: e.metadata for key, e in latest_keyed(entries, "trips").items()}
    assert set(published) == {k for k, e in keys.items() if e["verdict"] == "publish"}
    assert {v.key for v in verdicts if v.published} == set(published)
    assert all(m.routed_by == "pickup_borough" and m.version == "v1"
               for m in published.values())


def test_a_routing_field_the_trip_files_lack_is_one_clear_error(tmp_path: Path) -> None:
    settings = TrainSettings(quick=True, quick_rows=500, out=tmp_path, months="2019-09..2019-10",
                             validation_months=1, per="vendor_id")
    with pytest.raises(DataError, match="no vendor_id column"):
        train(settings, Console(stderr=True, quiet=True))
