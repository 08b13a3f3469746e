"""The one place that builds the faust App, from settings.

    python -m services.app worker --web-port 6066     # faust's own CLI
    edml serve                                         # the same app, through edml

faust runs the worker: lifecycle, signals, the web server, logging. The records do not go
through faust streams (see ``services/loop.py`` for why); the app has no agents or tables.
"""

from __future__ import annotations

import ssl

import faust

from edml.settings import KafkaSettings
from services.metrics import Metrics
from services.service import ScoringService
from services.settings import ScoringSettings
from services.web import register_views

__all__ = ["create_app", "credentials"]


def _broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap.split(","))


def credentials(kafka: KafkaSettings) -> faust.types.auth.CredentialsT | ssl.SSLContext | None:
    """faust's side of the security settings every confluent-kafka client gets from
    ``edml.kafka.client_config``. TLS is an SSLContext built here: faust 0.15.3's
    ``SSLCredentials()`` raises TypeError."""
    context = ssl.create_default_context(cafile=kafka.ssl_ca_location) \
        if kafka.security_protocol in ("SSL", "SASL_SSL") else None
    if kafka.sasl_mechanism is None:
        return context
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
        broker_credentials=credentials(settings.kafka),
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
        # faust 0.15.3 cannot run its consumer on no topic (topic_disable_leader=True
        # crashes it: "provide either topics or pattern"), so it keeps its leader topic,
        # <group>-worker-__assignor-__leader: the README lists the ACLs that needs
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
