"""Debian's Prometheus for the tests: promtool, and a real server on loopback."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from edml.local.processes import free_port, spawn, stop
from tests.system_packages import debian_binary


def binary(name: str) -> str:
    """promtool or prometheus, from Debian's prometheus package."""
    return debian_binary(name, "prometheus package")


class Prometheus:
    """A Prometheus server scraping ``targets`` every second and evaluating ``rule_files``
    every second, with its own storage under ``root``."""

    def __init__(self, root: Path, targets: list[str], rule_files: list[Path]) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [{"job_name": "edml-scoring", "scrape_timeout": "1s",
                                "static_configs": [{"targets": targets}]}],
        }
        root.mkdir(parents=True, exist_ok=True)
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        self._argv = [binary("prometheus"), f"--config.file={root / 'prometheus.yml'}",
                      f"--storage.tsdb.path={root / 'data'}",
                      f"--web.listen-address=127.0.0.1:{self.port}"]
        self._log = root / "prometheus.log"
        self._process = spawn(self._argv, self._log, {"PATH": os.environ["PATH"]})

    def __enter__(self) -> Prometheus:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self._process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready",
                                            timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        stop(self._process, signal.SIGTERM)
        raise AssertionError(f"prometheus did not become ready: {self.log()}")

    def __exit__(self, *exc: object) -> None:
        stop(self._process, signal.SIGTERM)

    def log(self) -> str:
        return self._log.read_text(errors="replace")[-3000:] if self._log.exists() else ""

    def _get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:  # a bad query: Prometheus says why
            raise AssertionError(f"{params}: {exc.read().decode()}") from exc
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's series (an error fails the test, saying why)."""
        data = self._get("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def active_alerts(self) -> dict[str, list[dict[str, str]]]:
        """The alerts whose expression holds now, with their labels and their ``state``:
        pending while their ``for`` runs, then firing."""
        alerts: dict[str, list[dict[str, str]]] = {}
        for alert in self._get("/api/v1/alerts")["alerts"]:
            alerts.setdefault(alert["labels"]["alertname"], []).append(
                alert["labels"] | {"state": alert["state"]})
        return alerts
