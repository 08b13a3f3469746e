"""Child processes that cannot outlive the stack: started in their own session, with a
parent-death signal on Linux, stopped with an escalating signal, waited for."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from edml.errors import StackError

__all__ = ["free_port", "port_is_open", "spawn", "stop", "wait_until"]

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def _die_with_parent() -> None:
    # If the Python process that started us is killed (a crashed test run), the kernel
    # kills us too, so no broker outlives its owner.
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(argv: Sequence[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = log_path.open("ab")
    try:
        return subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True, preexec_fn=_die_with_parent,
        )
    except OSError as exc:
        raise StackError(f"cannot start {argv[0]}: {exc}") from exc
    finally:
        log.close()


def stop(process: subprocess.Popen[bytes], first: signal.Signals = signal.SIGINT,
         grace_s: float = 5.0) -> None:
    """Stop gently, then kill; return only when the process is gone."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, first)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_until(ready: Callable[[], bool], what: str, timeout_s: float,
               process: subprocess.Popen[bytes] | None = None, log_path: Path | None = None,
               interval_s: float = 0.05) -> None:
    """Poll ``ready`` until it is true; fail early if ``process`` died."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if process is not None and process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path else ""
            raise StackError(f"{what} exited with {process.returncode} while starting:\n{tail}")
        if time.monotonic() > deadline:
            raise StackError(f"{what} not ready after {timeout_s} s")
        time.sleep(interval_s)
