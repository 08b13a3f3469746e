from __future__ import annotations

from pathlib import Path

import pytest

from edml.trip_data import default_trip_data, shared_samples


@pytest.fixture(scope="session")
def trip_data() -> Path:
    """Real TLC trips: the shared samples where present, else the project's own sample."""
    return default_trip_data().folder


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The full shared samples (10,000 trips a month, the zone polygons): developers only."""
    folder = shared_samples().folder
    if not folder.is_dir():
        pytest.skip(f"needs the full shared TLC samples, absent here ({folder})")
    return folder
