"""Model versions: ``<project version>-<UTC yyyymmddHHMMSS>-<short git sha>`` unless given."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from importlib import metadata

__all__ = ["git_commit", "make_version"]

def git_commit(given: str | None = None) -> str | None:
    """The commit: given (settings, or the CI's variable), else ``git rev-parse HEAD``."""
    if given:
        return given
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def make_version(commit: str | None, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    return f"{metadata.version('edml')}-{stamp}-{(commit or 'nogit')[:7]}"
