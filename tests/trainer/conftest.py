from __future__ import annotations

from pathlib import Path

import pytest

from trainer.settings import default_data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = default_data_dir()
    if not path.is_dir():
        pytest.skip(f"the shared TLC samples are not at {path}")
    return path
