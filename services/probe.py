"""Asking a worker how it is, over its HTTP endpoints (for the demo, benchmarks, tests)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

from edml.errors import StackError
from services.web import READY_PATH

__all__ = ["readiness", "wait_ready"]


def readiness(port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    """The body of ``/readyz`` (ready or not), or {} while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{READY_PATH}", timeout=2) as reply:
            return dict(json.loads(reply.read()))
    except urllib.error.HTTPError as exc:  # 503: answers, not ready
        return dict(json.loads(exc.read() or b"{}"))
    except (OSError, ValueError):
        return {}


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout_s: float = 120,
               version: str | None = None) -> dict[str, Any]:
    """Until the worker is ready, holds partitions (and serves ``version``, if given)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"the scoring worker exited with {process.returncode}")
        state = readiness(port)
        if state.get("ready") and state.get("partitions") and (
                version is None or state.get("model_version") == version):
            return state
        time.sleep(0.2)
    raise StackError(f"the scoring worker was not ready{' with ' + version if version else ''}"
                     f" after {timeout_s} s")
