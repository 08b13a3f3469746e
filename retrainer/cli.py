"""``edml retrain --follow``: answer the controller's retrain requests."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def _retrain(args: argparse.Namespace) -> int:
    from edml.kafka import require_broker
    from edml.stopping import run_until_signalled
    from retrainer.retrain import follow
    from retrainer.settings import RetrainSettings

    settings = RetrainSettings()
    require_broker(settings.kafka)  # one clear line for an unreachable broker
    return run_until_signalled(lambda stop: follow(settings, stop))


def register(sub: Any) -> None:
    run = sub.add_parser(
        "retrain", help="answer retrain requests: train on their window, publish in shadow",
        description="Follow the model-events topic (consumer group EDML_RETRAIN_GROUP_ID); "
        "for each retrain_requested event the controller writes, build the training set of "
        "its window from the records and actuals topics (or from EDML_RETRAIN_DATA files), "
        "train, and publish the result as a shadow candidate carrying the request's id. "
        "Settings: EDML_RETRAIN_* and the shared EDML_* variables.")
    run.add_argument("--follow", action="store_true", required=True,
                     help="keep following the topic until stopped (SIGTERM, Ctrl-C)")
    run.set_defaults(handler=_retrain)
