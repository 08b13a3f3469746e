"""``edml score`` on the real local stack: the same number as the stream, each trip scored
by the champion at its pickup, both engines writing the same files, and clear errors."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from batch_scoring.run import parts, score
from batch_scoring.settings import ScoreSettings
from edml.artifacts import artifact_uri
from edml.errors import ArtifactError, ConfigError, DataError
from edml.settings import KafkaSettings, StorageSettings, TopicSettings
from edml.trip_data import default_trip_data
from model_publisher.publish import announce, publish
from model_publisher.settings import PublisherSettings
from tests.services.workers import Workers, read_outputs, real_trips, send, serving, wait_for
from tests.system_packages import debian_binary

pytestmark = [pytest.mark.kafka, pytest.mark.gcs, pytest.mark.tf, pytest.mark.timeout(300)]

OCTOBER = str(default_trip_data().month("2019-10"))
SEPTEMBER = str(default_trip_data().month("2019-09"))


@pytest.fixture
def settings(kafka: KafkaSettings, topics: TopicSettings, gcs: StorageSettings,
             tmp_path: Path) -> ScoreSettings:
    return ScoreSettings(kafka=kafka, topics=topics, storage=gcs, model_name="trips",
                         cache_dir=tmp_path / "cache")


def _scored(out: Path) -> pd.DataFrame:
    return pd.concat(pd.read_parquet(part) for part in parts(out)).set_index("trip_id")


def test_a_trip_scored_in_batch_gets_the_number_the_stream_gave_it(
    quick_model: Path, publisher: PublisherSettings, workers: Workers, kafka: KafkaSettings,
    topics: TopicSettings, settings: ScoreSettings, tmp_path: Path,
) -> None:
    serving(quick_model, publisher, workers, "v1")
    trips = real_trips(300, "same")
    send(kafka, topics.records, [request for request, _ in trips])
    wait_for(lambda: len(read_outputs(kafka, topics).predictions) >= 300, 60,
             "300 predictions")
    streamed = {p.trip_id: p.predicted_duration_seconds
                for p in read_outputs(kafka, topics).predictions}
    # the same requests as a warehouse would export them, with their actual durations
    requests = pd.DataFrame([{**request.to_avro(), "duration_seconds": done.duration_seconds}
                             for request, done in trips])
    requests.to_parquet(tmp_path / "requests.parquet")

    summary = score(settings, [str(tmp_path / "requests.parquet")], tmp_path / "out", "v1",
                    progress=False)
    batch = _scored(tmp_path / "out")
    assert summary.rows == summary.scored == 300 and set(batch["model_version"]) == {"v1"}
    # the same float32 answer: TensorFlow's CPU kernels vectorise across a batch's rows, so
    # a row's last bits depend on the batch it was in (micro-batches on the stream, one
    # slice here), on the stream alone too (README, Batch scoring)
    batch_seconds = batch["predicted_duration_seconds"]
    assert set(batch_seconds.index) == set(streamed)
    np.testing.assert_allclose(batch_seconds.to_numpy(),
                               [streamed[trip] for trip in batch_seconds.index],
                               rtol=2 * np.finfo(np.float32).eps, atol=0)
    assert batch["actual_duration_seconds"].to_dict() == {
        request.trip_id: done.duration_seconds for request, done in trips}


def _two_champions(quick_model: Path, slower_model: Path, publisher: PublisherSettings
                   ) -> None:
    """v1 from 2019-10-03 12:00 UTC, then v2 (v1 answering 600 s more) from 2019-10-15
    12:00 UTC, 08:00 in New York."""
    publish(quick_model, "trips", publisher, version="v1",
            now=datetime(2019, 10, 3, 12, tzinfo=UTC))
    publish(slower_model, "trips", publisher, version="v2",
            now=datetime(2019, 10, 15, 12, tzinfo=UTC))


def test_as_of_scores_each_trip_with_the_champion_at_its_pickup(
    quick_model: Path, slower_model: Path, publisher: PublisherSettings,
    settings: ScoreSettings, tmp_path: Path,
) -> None:
    _two_champions(quick_model, slower_model, publisher)
    summary = score(settings, [OCTOBER], tmp_path / "as-of", None, progress=False)
    fixed = score(settings, [OCTOBER], tmp_path / "v1", "v1", progress=False)
    as_of, by_v1 = _scored(tmp_path / "as-of"), _scored(tmp_path / "v1")

    pickups = as_of["pickup_datetime"]
    assert (as_of.loc[pickups < "2019-10-15 08:00", "model_version"] == "v1").all()
    assert (as_of.loc[pickups >= "2019-10-15 08:00", "model_version"] == "v2").all()
    assert pickups.min() >= pd.Timestamp("2019-10-03 08:00")  # nothing served before v1
    assert fixed.scored - summary.scored == (by_v1["pickup_datetime"] < "2019-10-03 08:00").sum()
    # v2 really scored its trips: 600 s more than v1 for the same trip
    later = as_of[as_of["model_version"] == "v2"].index
    difference = as_of.loc[later, "predicted_duration_seconds"] - \
        by_v1.loc[later, "predicted_duration_seconds"]
    assert difference.round(2).eq(600).all() and len(later) > 1000
    report = json.loads((tmp_path / "as-of" / "summary.json").read_text())
    assert set(report["mae_minutes"]) == {"v1", "v2"}
    assert report["mae_minutes"]["v2"] > report["mae_minutes"]["v1"]  # ten minutes worse
    assert "MAE per month" in (tmp_path / "as-of" / "report.html").read_text()


def test_spark_and_the_local_engine_write_the_same_files(
    quick_model: Path, slower_model: Path, publisher: PublisherSettings,
    settings: ScoreSettings, tmp_path: Path,
) -> None:
    debian_binary("java", "openjdk-17-jre-headless")
    _two_champions(quick_model, slower_model, publisher)
    local = score(settings, [SEPTEMBER, OCTOBER], tmp_path / "local", None, progress=False)
    on_spark = settings.model_copy(update={"engine": "spark", "spark_master": "local[2]"})
    spark = score(on_spark, [SEPTEMBER, OCTOBER], tmp_path / "spark", None)
    assert spark == local
    parts = sorted(p.name for p in (tmp_path / "local").glob("part-*.parquet"))
    assert parts == ["part-00000.parquet", "part-00001.parquet"]
    for part in parts:
        assert pq.read_table(tmp_path / "spark" / part).equals(
            pq.read_table(tmp_path / "local" / part))
        assert (tmp_path / "spark" / part).read_bytes() == \
            (tmp_path / "local" / part).read_bytes()


def test_what_cannot_be_scored_is_a_clear_error(
    quick_model: Path, publisher: PublisherSettings, settings: ScoreSettings,
    gcs: StorageSettings, tmp_path: Path,
) -> None:
    v1 = publish(quick_model, "trips", publisher, version="v1").metadata
    with pytest.raises(ConfigError, match="names no version 'v9' of 'trips'"):
        score(settings, [OCTOBER], tmp_path / "out", "v9", progress=False)
    (tmp_path / "notes.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="cannot read"):
        score(settings, [str(tmp_path / "notes.parquet")], tmp_path / "out", "v1",
              progress=False)
    announce(publisher, dataclasses.replace(v1, version="v2-missing", storage_uri=(
        artifact_uri(gcs.uri, "trips", "v2-missing"))))
    with pytest.raises(ArtifactError):
        score(settings, [OCTOBER], tmp_path / "out", "v2-missing", progress=False)
