"""The edml command: clear errors, non-zero exits."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from edml.cli import main
from edml.local.processes import free_port


def test_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(word in out for word in ("demo", "stack", "topics", "train", "publish",
                                        "models", "serve"))


def test_an_unreachable_broker_prints_the_error_and_exits_non_zero() -> None:
    env = {"EDML_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}", "EDML_KAFKA_REQUEST_TIMEOUT_S": "2",
           "PATH": "/usr/bin:/bin"}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "edml.cli", "topics"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert any(line.startswith("BrokerError: cannot create topic")
               for line in result.stderr.splitlines()), result.stderr
    assert time.monotonic() - started < 30  # a bound on hanging (the command has 2 s)
