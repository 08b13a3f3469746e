"""The newcomer: the project alone (its tracked files, no ``shared/`` anywhere above it),
installed from its built wheel into a fresh venv, runs the main job."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.tf, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]


def _project_files() -> list[str]:
    if not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to know the project's files")
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    return [name for name in listed.stdout.splitlines() if (ROOT / name).is_file()]


def _run(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
           "COLUMNS": "80"}  # nothing of this checkout's environment leaks in
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_a_fresh_copy_installed_from_its_wheel_runs_the_demo_with_its_own_trips(
    tmp_path: Path,
) -> None:
    assert not any((parent / "shared").exists() for parent in tmp_path.parents)
    project = tmp_path / "edml"
    for name in _project_files():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, project / name)

    wheel = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                  str(tmp_path / "dist"), str(project)], tmp_path, 300)
    assert wheel.returncode == 0, wheel.stderr[-3000:]
    built = next((tmp_path / "dist").glob("edml-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = _run([str(venv / "bin" / "pip"), "install", "-q", "-c",
                    str(project / "constraints.txt"), str(built)], tmp_path, 600)
    assert install.returncode == 0, install.stderr[-3000:]

    home = tmp_path / "home"  # the demo works in its current folder: a new one
    home.mkdir()
    demo = _run([str(venv / "bin" / "edml"), "demo", "--seconds", "6", "--rate", "50"],
                home, 400)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "data: the sample of real TLC trips shipped with edml" in demo.stdout
    done = re.search(r"([\d,]+) of ([\d,]+) requests predicted", demo.stdout)
    assert done is not None, demo.stdout[-2000:]
    assert done[1] == done[2] and int(done[2].replace(",", "")) >= 250
