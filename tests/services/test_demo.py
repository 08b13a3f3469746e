"""``edml demo``, as the README's first command runs it, ends cleanly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.tf]


def test_the_demo_predicts_every_request_shows_the_swap_and_stops_everything(
    tmp_path: Path,
) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "COLUMNS": "120"}
    run = subprocess.run([sys.executable, "-m", "edml.cli", "demo", "--seconds", "8",
                          "--rate", "100"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=400)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    done = re.search(r"([\d,]+) of ([\d,]+) requests predicted", run.stdout)
    assert done is not None and done[1] == done[2], run.stdout[-2000:]
    assert re.search(r"first prediction of demo-\d+-v2", run.stdout)
    assert "the worker and the local stack are stopped" in run.stdout
