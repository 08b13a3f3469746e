"""The local object storage that speaks the GCS JSON API: gcp-storage-emulator, in memory."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from edml.errors import StackError
from edml.local.processes import free_port, spawn, stop, wait_until

__all__ = ["GcsEmulator"]

_LAUNCH = "from gcp_storage_emulator.__main__ import main; main()"


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/storage/v1/b", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class GcsEmulator:
    port: int
    bucket: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, workdir: Path, bucket: str, timeout_s: float = 30.0) -> GcsEmulator:
        port = free_port()
        log_path = workdir / f"gcs-emulator-{port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EDML_", "STORAGE_"))}
        process = spawn(
            [sys.executable, "-c", _LAUNCH, "start", "--host", "127.0.0.1", "--port", str(port),
             "--in-memory", "--default-bucket", bucket, "--quiet"],
            log_path, env,
        )
        emulator = cls(port, bucket, process, log_path)
        try:
            wait_until(lambda: _answers(emulator.endpoint), "gcp-storage-emulator",
                       timeout_s, process, log_path, interval_s=0.1)
        except StackError:
            emulator.stop()
            raise
        return emulator

    def stop(self) -> None:
        stop(self.process)
