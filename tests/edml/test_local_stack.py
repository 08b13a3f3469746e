"""The local stack starts real processes and leaves none behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from edml.errors import BrokerError
from edml.local import LocalStack, StackSettings
from edml.local.processes import port_is_open
from tests.leaks import children_of

pytestmark = pytest.mark.kafka


def _port(bootstrap: str) -> int:
    return int(bootstrap.rsplit(":", 1)[1])


def test_stopping_the_stack_leaves_no_process_or_port() -> None:
    with LocalStack(StackSettings(storage="gcs")) as stack:
        processes = stack.processes
        ports = [_port(stack.bootstrap), _port(stack.storage_endpoint or "")]
        assert len(processes) == 2 and all(port_is_open(p) for p in ports)
        workdir = stack.workdir
    assert all(p.poll() is not None for p in processes)
    assert not any(port_is_open(p) for p in ports)
    assert not workdir.exists()


def test_a_failure_inside_the_stack_still_stops_it() -> None:
    with pytest.raises(RuntimeError), LocalStack() as stack:
        broker = stack.processes[0]
        raise RuntimeError("a test failed here")
    assert broker.poll() is not None
    assert not port_is_open(_port(stack.bootstrap))


def test_the_broker_dies_with_a_killed_owner() -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import time
            from edml.local import LocalStack
            stack = LocalStack().__enter__()
            print(stack.bootstrap, flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert owner.stdout is not None
    bootstrap = owner.stdout.readline().strip()
    broker_pids = children_of(owner.pid)
    assert broker_pids and port_is_open(_port(bootstrap))

    owner.send_signal(signal.SIGKILL)
    owner.wait()

    deadline = time.monotonic() + 10
    while port_is_open(_port(bootstrap)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not port_is_open(_port(bootstrap))


def test_an_external_bootstrap_that_does_not_answer_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDML_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    monkeypatch.setenv("EDML_KAFKA_REQUEST_TIMEOUT_S", "2")
    with pytest.raises(BrokerError), LocalStack():
        pass
