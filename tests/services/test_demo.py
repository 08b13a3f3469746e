"""``edml demo``, as the README's first command runs it, ends cleanly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from services.demo import _Stats, _view


def test_the_demos_closing_view_fits_80_columns_without_wrapping() -> None:
    stats = _Stats(sent=8_200, predicted=8_200, serving="demo-134512-v2")
    stats.by_version.update({"demo-134512-v1": 4_100, "demo-134512-v2": 4_100})
    stats.errors_min = {"demo-134512-v1": [3.51] * 4_000, "demo-134512-v2": [3.42] * 4_000}
    stats.latencies_ms.extend([12.0, 31.0])
    stats.recent.extend([(0.0, 0), (1.0, 200)])
    stats.events = ["published trip-duration demo-134512-v1",
                    "scoring worker ready, log .edml/demo/worker.log",
                    "metrics http://127.0.0.1:41234/metrics",
                    " 20.1 s  published trip-duration demo-134512-v2",
                    " 20.5 s  first prediction of demo-134512-v2",
                    "x" * 200]  # whatever an event says, it is cut, not wrapped
    console = Console(width=200, record=True)  # room to spill: the view must not need it
    console.print(_view(stats, 40))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    assert any("MAE demo-134512-v2" in line and "3.42 min" in line for line in lines)


@pytest.mark.kafka
@pytest.mark.tf
def test_the_demo_predicts_every_request_starts_a_rollout_and_stops_everything(
    tmp_path: Path,
) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "COLUMNS": "80"}
    run = subprocess.run([sys.executable, "-m", "edml.cli", "demo", "--seconds", "8",
                          "--rate", "100"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=400)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    done = re.search(r"([\d,]+) of ([\d,]+) requests predicted", run.stdout)
    assert done is not None and done[1] == done[2], run.stdout[-2000:]
    assert "v2 published as a shadow" in run.stdout  # (8 s is too short for a verdict)
    assert "the worker and the local stack are stopped" in run.stdout
