"""The Debian packages some tests need (ci/system-packages.sh installs them): present, or a
skip where they cannot be installed, or a failure where they could have been."""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["debian_binary"]


def debian_binary(name: str, package: str) -> str:
    """The path of ``name``, from Debian's ``package``. Where the README's test command
    could install it (root with apt), missing is a failure; elsewhere a skip."""
    path = shutil.which(name)
    if path is not None:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        pytest.fail(f"{name} is missing on a machine that is root with apt: the README's "
                    f"test command installs Debian's {package} (ci/system-packages.sh)")
    pytest.skip(f"{name} is not installed, and cannot be here (not root with apt): install "
                f"Debian's {package} to run this test")
