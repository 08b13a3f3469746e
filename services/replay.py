"""Real TLC trips as the requests and actual durations the demo, the benchmarks and the
tests replay against a scoring worker."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edml.contracts import TripCompleted, TripRequest
from edml.errors import DataError
from edml.trip_data import default_trip_data

__all__ = ["replay_trips"]

_ANY_MONTH = "2009-01..2035-12"  # the window of the replay is whatever the files hold


def replay_trips(n: int | None = None, prefix: str = "trip", sources: Sequence[str] = (),
                 shuffle_seed: int | None = None, months: str | None = None
                 ) -> list[tuple[TripRequest, TripCompleted]]:
    """Up to ``n`` cleaned trips of ``months`` (``YYYY-MM..YYYY-MM``; default: the latest
    month in ``sources``; default sources: October 2019, from the shared samples or the
    project's own), in pickup order unless shuffled, with ids ``<prefix>-<i>``."""
    from trainer.data import clean, load_trips, parse_months, resolve_sources

    wanted = parse_months(months or _ANY_MONTH)
    specs = list(sources) or ([default_trip_data().trips] if months else
                              [str(default_trip_data().month("2019-10"))])
    resolved = resolve_sources(specs, wanted)
    if not resolved:
        raise DataError(f"no trips of {months or 'any month'} to replay: pass trip files")
    trips, _ = clean(load_trips(resolved, Path(".edml/tlc-cache")), wanted)
    if months is None:
        trips = trips[trips["month"] == trips["month"].max()]  # the latest month: unseen
    trips = trips.sort_values("pickup_datetime", kind="stable")
    if shuffle_seed is not None:
        trips = trips.sample(frac=1.0, random_state=shuffle_seed)
    return [(TripRequest(f"{prefix}-{i}", row.pickup_datetime.to_pydatetime(),
                         int(row.pickup_zone_id), int(row.dropoff_zone_id),
                         int(row.passenger_count)),
             TripCompleted(f"{prefix}-{i}", row.dropoff_datetime.to_pydatetime(),
                           float(row.duration_seconds)))
            for i, row in enumerate(trips.iloc[:n].itertuples())]
