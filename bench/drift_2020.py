"""The 2020 scenario: the drift loop against the real shift of spring 2020, on the local
stack (``services.drift_scenario``; the same as ``edml demo --scenario 2020``).

    .venv/bin/python bench/drift_2020.py [--seconds-per-month 60] [--data SOURCE ...]

Prints per month the MAE of the predictions consumers got, of the frozen 2019 champion
and of the 2018-19 zone-pair median; the findings, retrain requests, candidates and
decisions in event time; and the issue's targets beside what the run gave: no finding
before the onset (2020-03-15), the first within 7 event-time days of it, served MAE over
2020-04..08 at least 20% below the frozen champion's and below the zone-pair median every
month, no request without an outcome.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console

from edml.quiet import quiet_tensorflow
from services.drift_scenario import print_result, run, targets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds-per-month", type=float, default=60.0)
    parser.add_argument("--data", action="append", default=[], metavar="SOURCE")
    args = parser.parse_args()
    quiet_tensorflow()
    console = Console()
    result = run(args.seconds_per_month, args.data, console)
    print_result(result, console)
    return 0 if all(targets(result).values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
