"""``edml serve``: run one scoring worker."""

from __future__ import annotations

import argparse
import logging.config
import os
from pathlib import Path
from typing import Any

from edml.quiet import quiet_tensorflow

__all__ = ["register"]


def _serve(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow start-up chatter
    import faust

    from edml.kafka import require_broker
    from edml.logs import dict_config
    from services.app import create_app
    from services.settings import ScoringSettings

    given = {k: v for k, v in (("web_port", args.web_port), ("web_host", args.web_host),
                               ("data_dir", args.data_dir), ("model_name", args.model))
             if v is not None}
    settings = ScoringSettings(**given)
    require_broker(settings.kafka)  # one clear line, not a faust traceback
    logs = dict_config(args.log_level, args.log_json)
    # set up now, not when faust starts: the worker's threads begin before faust does, and
    # their first events (the model table's catch-up, its rebuild) must not be dropped
    logging.config.dictConfig(logs)
    app = create_app(settings)
    app.scoring.begin()  # type: ignore[attr-defined]  # the model loads while faust starts
    worker = faust.Worker(app, loglevel=args.log_level, logging_config=logs)
    worker.execute_from_commandline()  # returns only by exiting the process
    return 0


def _demo(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    if args.scenario == "2020":
        from rich.console import Console

        from services.drift_scenario import print_result, targets
        from services.drift_scenario import run as run_2020

        console = Console()
        result = run_2020(args.seconds_per_month, args.data, console)
        print_result(result, console)
        return 0 if all(targets(result).values()) else 1
    from services.demo import run

    return run(seconds=args.seconds, rate=args.rate, data=args.data, storage=args.storage)


def register(sub: Any) -> None:
    demo = sub.add_parser(
        "demo", help="the whole system on this machine, live: train, publish, serve, swap",
        description="Start the local stack, train two quick models (reused from .edml/demo "
        "afterwards), publish v1, start a scoring worker, replay real trips as requests "
        "with their actual durations, publish v2 halfway, and show rate, latency, the "
        "serving version and running MAE live. Ctrl-C stops everything cleanly.")
    demo.add_argument("--seconds", type=float, default=40.0, help="how long to replay "
                      "(default 40)")
    demo.add_argument("--rate", type=int, default=200, help="requests per second (default 200)")
    demo.add_argument("--data", action="append", metavar="SOURCE",
                      help="trip files to train on and replay (default: the shared samples)")
    demo.add_argument("--storage", choices=["file", "gcs"], default="file",
                      help="object storage: a local directory (default) or the GCS emulator")
    demo.add_argument("--scenario", choices=["rollout", "2020"], default="rollout",
                      help="rollout (default): the live view above; 2020: the drift loop "
                      "against the real shift of spring 2020, 2020-01..08 replayed in "
                      "event time with the 2019 champion, a table per month at the end")
    demo.add_argument("--seconds-per-month", type=float, default=60.0,
                      help="the 2020 scenario's speed (default 60: about 9 minutes in all)")
    demo.set_defaults(handler=_demo)

    serve = sub.add_parser(
        "serve", help="run a scoring worker (faust): records in, predictions out",
        description="Run one scoring worker: follow the model topic, load the current "
        "version of the model, score the records topic in micro-batches, serve /healthz, "
        "/readyz and /metrics. Settings: EDML_SCORING_* and the shared EDML_* variables.")
    serve.add_argument("--model", help="model name to serve (EDML_SCORING_MODEL_NAME, "
                       "default trip-duration)")
    serve.add_argument("--data-dir", type=Path, help="RocksDB table and model cache "
                       "(EDML_SCORING_DATA_DIR, default .edml/scoring)")
    serve.add_argument("--web-host", help="bind address (EDML_SCORING_WEB_HOST, default "
                       "0.0.0.0)")
    serve.add_argument("--web-port", type=int, help="HTTP port for probes and metrics "
                       "(EDML_SCORING_WEB_PORT, default 6066)")
    serve.set_defaults(handler=_serve)
