"""Reading and cleaning TLC trip files: real samples, and each kind of bad input."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from edml.errors import DataError
from edml.local.processes import free_port
from trainer.data import TLC_URL, clean, load_trips, parse_months, resolve_sources

SAMPLE = "yellow_tripdata_sample_2019-06.parquet"


def test_months_expand_inclusively() -> None:
    assert [str(m) for m in parse_months("2018-11..2019-02")] == [
        "2018-11", "2018-12", "2019-01", "2019-02"]


@pytest.mark.parametrize("bad", ["2019-13..2019-14", "soon", "2019-05..2019-01"])
def test_bad_months_are_a_data_error(bad: str) -> None:
    with pytest.raises(DataError, match="months"):
        parse_months(bad)


def test_tlc_sources_are_the_tlc_monthly_urls() -> None:
    months = parse_months("2019-01..2019-12")
    assert resolve_sources(["tlc:2019-09..2019-10"], months) == [
        TLC_URL.format(month="2019-09"), TLC_URL.format(month="2019-10")]


def test_a_glob_selects_only_files_of_the_months_asked_for(trip_data: Path) -> None:
    sources = resolve_sources([str(trip_data / "yellow_tripdata_sample_*.parquet")],
                              parse_months("2019-09..2019-10"))
    assert [Path(s).name for s in sources] == ["yellow_tripdata_sample_2019-09.parquet",
                                               "yellow_tripdata_sample_2019-10.parquet"]


def test_a_folder_reads_the_trip_files_in_it(trip_data: Path) -> None:
    sources = resolve_sources([str(trip_data)], parse_months("2020-11..2020-12"))
    assert [Path(s).name for s in sources] == ["yellow_tripdata_sample_2020-11.parquet",
                                               "yellow_tripdata_sample_2020-12.parquet"]


def test_a_folder_without_trip_files_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no trips here")
    with pytest.raises(DataError, match="no trip files"):
        resolve_sources([str(tmp_path)], parse_months("2019-01"))


def test_cleaning_real_trips_reports_what_each_rule_dropped(trip_data: Path) -> None:
    raw = load_trips([str(trip_data / SAMPLE)], Path("unused"))
    trips, report = clean(raw, parse_months("2019-06"))
    assert report.rows_in == len(raw)
    assert report.rows_out == len(trips) == len(raw) - sum(report.dropped.values())
    assert report.dropped["duration outside 1 min .. 3 h"] > 0
    assert report.dropped["unknown zone (264/265 or outside 1..263)"] > 0
    assert report.dropped["passenger count 0 or missing"] > 0
    assert trips["duration_seconds"].between(60, 3 * 3600).all()
    assert trips["pickup_zone_id"].between(1, 263).all()
    assert (trips["passenger_count"] >= 1).all()
    assert (trips["pickup_datetime"].dt.to_period("M") == pd.Period("2019-06", "M")).all()


def test_pickups_outside_the_files_month_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "trips_2019-03.csv"
    pd.DataFrame({
        "tpep_pickup_datetime": ["2019-03-05 10:00:00", "2019-02-28 23:50:00"],
        "tpep_dropoff_datetime": ["2019-03-05 10:20:00", "2019-03-01 00:10:00"],
        "passenger_count": [1, 2], "PULocationID": [161, 161], "DOLocationID": [236, 236],
    }).to_csv(path, index=False)
    trips, report = clean(load_trips([str(path)], tmp_path), parse_months("2019-02..2019-03"))
    assert report.dropped["pickup outside the file's month"] == 1
    assert len(trips) == 1


def test_a_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such trip file"):
        load_trips([str(tmp_path / "nope.parquet")], tmp_path)


def test_a_glob_matching_nothing_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no file matches"):
        resolve_sources([str(tmp_path / "*.parquet")], parse_months("2019-01"))


def test_a_file_without_the_needed_columns_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "fares.parquet"
    pd.DataFrame({"fare_amount": [5.0], "PULocationID": [1]}).to_parquet(path)
    with pytest.raises(DataError, match="lacks the TLC columns pickup_datetime"):
        load_trips([str(path)], tmp_path)


def test_an_unreadable_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match="cannot read"):
        load_trips([str(path)], tmp_path)


def test_nothing_left_after_cleaning_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "bad_2019-01.csv"
    pd.DataFrame({
        "tpep_pickup_datetime": ["2019-01-05 10:00:00"],
        "tpep_dropoff_datetime": ["2019-01-05 09:00:00"],  # ends before it starts
        "passenger_count": [1], "PULocationID": [1], "DOLocationID": [2],
    }).to_csv(path, index=False)
    with pytest.raises(DataError, match="no trips left after cleaning 1 rows"):
        clean(load_trips([str(path)], tmp_path), parse_months("2019-01"))


@pytest.fixture
def file_server(trip_data: Path) -> Iterator[str]:
    handler = partial(SimpleHTTPRequestHandler, directory=str(trip_data))
    handler.log_message = lambda *args: None  # type: ignore[assignment]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_url_is_downloaded_once_into_the_cache(file_server: str, trip_data: Path,
                                                 tmp_path: Path) -> None:
    url, rows = f"{file_server}/{SAMPLE}", pq.read_metadata(trip_data / SAMPLE).num_rows
    assert len(load_trips([url], tmp_path)) == rows
    assert (tmp_path / SAMPLE).is_file()
    assert len(load_trips([url], tmp_path)) == rows  # from the cache


def test_an_unreachable_url_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot download"):
        load_trips([f"http://127.0.0.1:{free_port()}/{SAMPLE}"], tmp_path)
    assert not list(tmp_path.iterdir())  # no partial file left
