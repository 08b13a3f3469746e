"""Reading TLC trip files and cleaning them as the data demands.

Trip files carry the TLC's own column names (yellow ``tpep_*``; green ``lpep_*`` is read
the same way). Datetimes are naive New York wall-clock time, as the TLC publishes them.
"""

from __future__ import annotations

import glob
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

import pandas as pd

from edml.errors import DataError

__all__ = ["CleanReport", "TripFrame", "clean", "load_trips", "parse_months", "resolve_sources"]

TLC_URL = "https://d37ci6vzurychx.cloudfront.net/trip-data/yellow_tripdata_{month}.parquet"
REQUIRED = ("pickup_datetime", "dropoff_datetime", "passenger_count", "PULocationID",
            "DOLocationID")
_RENAMES = {
    "tpep_pickup_datetime": "pickup_datetime", "tpep_dropoff_datetime": "dropoff_datetime",
    "lpep_pickup_datetime": "pickup_datetime", "lpep_dropoff_datetime": "dropoff_datetime",
}
TRIP_FILE_SUFFIXES = (".parquet", ".csv", ".csv.gz")
_MONTH_IN_NAME = re.compile(r"(\d{4})-(\d{2})")
MIN_DURATION_S, MAX_DURATION_S = 60, 3 * 3600
KNOWN_ZONES = range(1, 264)  # 264 and 265 are the TLC's "unknown" zones

TripFrame: TypeAlias = pd.DataFrame  # columns: trip_id, pickup_datetime, ..., duration_seconds


def parse_months(spec: str) -> list[pd.Period]:
    """``2018-01..2019-10`` -> every month from the first to the last, inclusive."""
    try:
        first, _, last = spec.partition("..")
        start, end = pd.Period(first, "M"), pd.Period(last or first, "M")
    except ValueError as exc:
        raise DataError(f"months {spec!r} must look like 2018-01..2019-10") from exc
    if end < start:
        raise DataError(f"months {spec!r}: the last month is before the first")
    return list(pd.period_range(start, end, freq="M"))


def resolve_sources(specs: Iterable[str], months: list[pd.Period] | None) -> list[str]:
    """Paths, folders, globs and URLs; ``tlc:`` expands to the TLC's monthly file URLs, a
    folder to the trip files in it. Files named for a month outside ``months`` are left
    out; with ``months`` None, none is."""
    sources: list[str] = []
    for spec in specs:
        if spec.startswith("tlc:"):
            tlc_months = spec[4:] or (str(months[0]) if months else "")
            if not tlc_months:
                raise DataError("tlc: needs its months: tlc:2020-01..2020-03")
            sources += [TLC_URL.format(month=m) for m in parse_months(tlc_months)]
        elif spec.startswith(("http://", "https://")):
            sources.append(spec)
        elif Path(spec).is_dir():
            # the TLC's zone tables (taxi_zone_*.csv) often sit beside its trip files
            found = sorted(str(p) for p in Path(spec).iterdir()
                           if p.name.lower().endswith(TRIP_FILE_SUFFIXES)
                           and not p.name.startswith("taxi_zone"))
            if not found:
                raise DataError(f"no trip files ({', '.join(TRIP_FILE_SUFFIXES)}) in {spec}")
            sources += found
        else:
            matches = sorted(glob.glob(spec)) if glob.has_magic(spec) else [spec]
            if not matches:
                raise DataError(f"no file matches {spec}")
            sources += matches
    if months is None:
        return sources
    wanted = {str(m) for m in months}
    # A file named for a month outside the window is not even read.
    return [s for s in sources if (m := _MONTH_IN_NAME.search(Path(s).name)) is None
            or f"{m[1]}-{m[2]}" in wanted]


def _download(url: str, cache_dir: Path) -> Path:
    target = cache_dir / Path(url).name
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise DataError(f"cannot download {url}: {exc}") from exc
    partial.rename(target)
    return target


def _read(path: Path) -> pd.DataFrame:
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            frame = pd.read_parquet(path)
        elif name.endswith(TRIP_FILE_SUFFIXES[1:]):
            frame = pd.read_csv(path, low_memory=False)
        else:
            raise DataError(f"{path}: not a .parquet or .csv trip file")
    except FileNotFoundError as exc:
        raise DataError(f"no such trip file: {path}") from exc
    except (OSError, ValueError) as exc:  # pyarrow and pandas parse errors
        raise DataError(f"cannot read {path}: {exc}") from exc
    frame = frame.rename(columns=_RENAMES)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks the TLC columns {', '.join(missing)}")
    frame = frame[list(REQUIRED)].copy()
    for column in ("pickup_datetime", "dropoff_datetime"):
        frame[column] = pd.to_datetime(frame[column], errors="coerce")
    m = _MONTH_IN_NAME.search(path.name)
    # the file's month: from its name, else the month most of its pickups fall in
    frame["file_month"] = (pd.Period(f"{m[1]}-{m[2]}", "M") if m
                           else frame["pickup_datetime"].dt.to_period("M").mode().iloc[0])
    frame["trip_id"] = [f"{path.stem}-{i}" for i in range(len(frame))]
    return frame


def load_trips(sources: list[str], cache_dir: Path,
               on_file: Callable[[str], None] = lambda _: None) -> pd.DataFrame:
    """Every row of every source, with the file's month, before any cleaning."""
    if not sources:
        raise DataError("no trip files to read")
    frames = []
    for source in sources:
        path = _download(source, cache_dir) if source.startswith("http") else Path(source)
        frames.append(_read(path))
        on_file(source)
    return pd.concat(frames, ignore_index=True)


@dataclass
class CleanReport:
    rows_in: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # rule -> rows, in rule order

    @property
    def rows_out(self) -> int:
        return self.rows_in - sum(self.dropped.values())


def clean(raw: pd.DataFrame, months: list[pd.Period]) -> tuple[TripFrame, CleanReport]:
    """Drop what cannot be a real, requestable trip; count what each rule dropped."""
    report = CleanReport(rows_in=len(raw))
    frame = raw
    duration = (frame["dropoff_datetime"] - frame["pickup_datetime"]).dt.total_seconds()
    frame = frame.assign(duration_seconds=duration)
    month = frame["pickup_datetime"].dt.to_period("M")
    rules: list[tuple[str, Callable[[pd.DataFrame], pd.Series]]] = [
        ("missing pickup, dropoff or zone", lambda f: f[["pickup_datetime", "dropoff_datetime",
                                                         "PULocationID", "DOLocationID"]]
         .isna().any(axis=1)),
        ("duration outside 1 min .. 3 h", lambda f: ~f["duration_seconds"].between(
            MIN_DURATION_S, MAX_DURATION_S)),
        ("unknown zone (264/265 or outside 1..263)", lambda f: ~(
            f["PULocationID"].isin(KNOWN_ZONES) & f["DOLocationID"].isin(KNOWN_ZONES))),
        ("passenger count 0 or missing", lambda f: f["passenger_count"].fillna(0).le(0)),
        ("pickup outside the file's month", lambda f: month.loc[f.index] != f["file_month"]),
        ("pickup outside the months asked for", lambda f: ~month.loc[f.index].isin(months)),
    ]
    for rule, drop in rules:
        mask = drop(frame).fillna(True).astype(bool)
        report.dropped[rule] = int(mask.sum())
        frame = frame[~mask]
    if frame.empty:
        raise DataError(
            f"no trips left after cleaning {report.rows_in} rows: "
            + ", ".join(f"{rule}: {n}" for rule, n in report.dropped.items())
        )
    trips = frame.assign(
        passenger_count=frame["passenger_count"].astype("int64").clip(upper=9),
        pickup_zone_id=frame["PULocationID"].astype("int64"),
        dropoff_zone_id=frame["DOLocationID"].astype("int64"),
        month=month.loc[frame.index],
    )[["trip_id", "pickup_datetime", "dropoff_datetime", "pickup_zone_id", "dropoff_zone_id",
       "passenger_count", "duration_seconds", "month"]]
    return trips.sort_values("pickup_datetime", kind="stable").reset_index(drop=True), report
