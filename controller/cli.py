"""``edml controller``: run the rollout controller."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def _controller(args: argparse.Namespace) -> int:
    from controller.controller import RolloutController
    from controller.settings import ControllerSettings
    from edml.kafka import require_broker
    from edml.stopping import run_until_signalled

    settings = ControllerSettings()
    require_broker(settings.kafka)  # one clear line for an unreachable broker
    return run_until_signalled(RolloutController(settings).run)


def register(sub: Any) -> None:
    run = sub.add_parser(
        "controller", help="run the rollout controller: promote or roll back candidates",
        description="Follow the model topic and the workers' rollout evidence on the "
        "evaluations topic; when a candidate's policy reaches a verdict, write the decision "
        "(a ModelEvent with its evidence) and the new serving state. One replica is enough; "
        "it rebuilds its state from the topics on every start. Settings: "
        "EDML_CONTROLLER_* and the shared EDML_* variables.")
    run.set_defaults(handler=_controller)
