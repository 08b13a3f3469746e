"""The worker's HTTP endpoints, on faust's web server: liveness, readiness, metrics."""

from __future__ import annotations

from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST

from services.service import ScoringService

__all__ = ["HEALTH_PATH", "METRICS_PATH", "READY_PATH", "register_views"]

HEALTH_PATH, READY_PATH, METRICS_PATH = "/healthz", "/readyz", "/metrics"
_PROMETHEUS_TYPE = CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"


def register_views(app: faust.App, service: ScoringService) -> None:
    @app.page(HEALTH_PATH)
    async def healthz(view: Any, request: Any) -> Any:
        """Alive: the worker's threads run. A failed one makes this 503 until the worker
        stops itself."""
        alive = service.is_alive
        return view.json({"alive": alive}, status=200 if alive else 503)

    @app.page(READY_PATH)
    async def readyz(view: Any, request: Any) -> Any:
        """Ready only when a model is loaded, the model table is caught up and records flow."""
        current = service.slot.current
        body = {
            "ready": service.is_ready,
            "model_name": service.settings.model_name,
            "model_version": current.version if current else None,
            "model_table_caught_up": service.follower.caught_up.is_set(),
            "partitions": [f"{p.topic}[{p.partition}]" for p in service.scoring.assigned],
        }
        return view.json(body, status=200 if body["ready"] else 503)

    @app.page(METRICS_PATH)
    async def metrics(view: Any, request: Any) -> Any:
        # aiohttp takes the charset apart from the content type
        return view.bytes(service.metrics.exposition(), content_type=_PROMETHEUS_TYPE)
