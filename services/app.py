"""The one place that builds the faust App, from settings.

    python -m services.app worker --web-port 6066     # faust's own CLI
    edml serve                                         # the same app, through edml

faust runs the worker: lifecycle, signals, the web server, logging. The records do not go
through faust streams (see ``services/loop.py`` for why); the app has no agents or tables.
"""

from __future__ import annotations

import faust

from services.metrics import Metrics
from services.service import ScoringService
from services.settings import ScoringSettings
from services.web import register_views

__all__ = ["create_app"]


def _broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap.split(","))


def _credentials(settings: ScoringSettings) -> faust.types.auth.CredentialsT | None:
    kafka = settings.kafka
    if kafka.sasl_mechanism is None:
        return faust.SSLCredentials() if kafka.security_protocol == "SSL" else None
    import ssl

    context = ssl.create_default_context(cafile=kafka.ssl_ca_location) \
        if kafka.security_protocol == "SASL_SSL" else None
    password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
    if kafka.sasl_mechanism == "PLAIN":
        return faust.SASLCredentials(username=kafka.sasl_username, password=password,
                                     ssl_context=context)
    return faust.SASLCredentials(username=kafka.sasl_username, password=password,
                                 ssl_context=context, mechanism=kafka.sasl_mechanism)


def create_app(settings: ScoringSettings | None = None) -> faust.App:
    settings = settings or ScoringSettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        f"{settings.group_id}-worker",  # faust's own group: distinct from the scoring group
        broker=_broker_url(settings.kafka.bootstrap),
        broker_credentials=_credentials(settings),
        broker_session_timeout=settings.kafka.session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.kafka.heartbeat_interval_ms / 1000,
        broker_commit_interval=1.0,
        datadir=str(settings.data_dir / "faust"),
        store="memory://",
        topic_partitions=settings.topics.partitions,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        autodiscover=False,
    )
    metrics = Metrics()
    service = ScoringService(settings, metrics)
    # faust's stub says a class; an instance works as well, and this one has settings
    app.service(service)  # type: ignore[arg-type]
    register_views(app, service)
    app.scoring = service  # type: ignore[attr-defined]
    return app


if __name__ == "__main__":
    create_app().main()
