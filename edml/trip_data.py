"""Where the real TLC trips come from when a command is given none.

Two places, in this order: the full shared samples beside a developer's checkout
(``../shared/data/nyc-taxi``, 10,000 trips a month), else the small sample of the same
real trips that ships inside the package (``data/nyc-taxi``, installed as
``edml.sample_trips``), so an installed ``edml`` on a fresh machine runs from itself alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = ["TripData", "bundled_sample", "default_trip_data", "shared_samples"]

TRIP_FILES = "yellow_tripdata_sample_*.parquet"


@dataclass(frozen=True)
class TripData:
    folder: Path
    label: str  # what a command says it used

    def month(self, month: str) -> Path:
        return self.folder / TRIP_FILES.replace("*", month)

    @property
    def trips(self) -> str:
        """A glob of every monthly trip file."""
        return str(self.folder / TRIP_FILES)

    @property
    def zones(self) -> Path:
        return self.folder / "taxi_zone_centroids.csv"


def shared_samples() -> TripData:
    """The developers' full samples: ``shared/`` beside the checkout holding this package."""
    folder = Path(__file__).resolve().parents[2] / "shared" / "data" / "nyc-taxi"
    return TripData(folder, f"the shared TLC samples in {folder}")


def bundled_sample() -> TripData:
    # a real folder both in an editable install and in a wheel (setuptools unpacks it)
    folder = Path(str(resources.files("edml.sample_trips")))
    return TripData(folder, f"the sample of real TLC trips shipped with edml ({folder})")


def default_trip_data() -> TripData:
    shared = shared_samples()
    return shared if shared.folder.is_dir() else bundled_sample()
