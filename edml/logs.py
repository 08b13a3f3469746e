"""Structured logs: one line per event, ``event key=value ...``, or JSON with EDML_LOG_JSON."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

__all__ = ["configure", "dict_config", "event", "get_logger"]


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log what happened (``name``, e.g. ``model.loaded``) to what (``fields``)."""
    logger.log(level, name, extra={"edml_fields": fields})


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "edml_fields", {})
        parts = [self.formatTime(record), record.levelname, record.name, record.getMessage()]
        parts += [f"{key}={value!r}" if isinstance(value, str) and " " in value
                  else f"{key}={value}" for key, value in fields.items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            **getattr(record, "edml_fields", {}),
        }
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure(level: str = "INFO", json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def dict_config(level: str = "INFO", json_lines: bool = False) -> dict[str, Any]:
    """The same set-up as ``configure``, as a ``logging.config`` dict (for faust's worker)."""
    formatter = "edml.logs.JsonFormatter" if json_lines else "edml.logs.KeyValueFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"edml": {"()": formatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "edml",
                                "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level},
    }
