"""The ``edml`` command: one entry point, a subcommand per part.

Each part module registers its subcommands; its heavy imports (TensorFlow, faust) happen
only inside the command that needs them, so ``edml --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from edml.errors import ConfigError, EdmlError
from edml.logs import configure
from edml.settings import config_error

__all__ = ["main"]

# The parts that add subcommands, each with register(subparsers) in its cli module.
PARTS: tuple[str, ...] = ("trainer.cli", "model_publisher.cli", "services.cli",
                          "controller.cli", "retrainer.cli", "batch_scoring.cli")

Handler = Callable[[argparse.Namespace], int]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stack(args: argparse.Namespace) -> int:
    from edml.local import LocalStack, StackSettings

    signal.signal(signal.SIGTERM, _interrupt)  # stop as cleanly as on Ctrl-C

    with LocalStack(StackSettings(storage=args.storage)) as stack:
        exports = "".join(f"export {key}={value}\n" for key, value in stack.env().items())
        print(exports + "# the local stack runs; Ctrl-C stops it", flush=True)
        if args.env_file is not None:
            # written whole, then renamed: a script that waits for the file never reads half
            partial = args.env_file.with_name(args.env_file.name + ".part")
            partial.write_text(exports)
            partial.rename(args.env_file)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


def _topics(args: argparse.Namespace) -> int:
    from edml.kafka import ensure_topics, require_broker, topic_specs
    from edml.settings import KafkaSettings, TopicSettings

    kafka, topics = KafkaSettings(), TopicSettings()
    require_broker(kafka)
    created = ensure_topics(kafka, topic_specs(topics))
    print("created: " + (", ".join(created) or "none (all exist)"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edml",
        description="Event-driven ML on Kafka: train, publish and serve trip-duration models. "
        "Settings come from EDML_* environment variables (see README).",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stack = sub.add_parser("stack", help="run the local stack (broker + storage) until Ctrl-C")
    stack.add_argument("--storage", choices=["file", "gcs"], default="file",
                       help="object storage: a local directory (default) or the GCS emulator")
    stack.add_argument("--env-file", type=Path,
                       help="also write the EDML_* exports to this file once the stack is ready")
    stack.set_defaults(handler=_stack)

    topics = sub.add_parser("topics", help="create the edml topics that do not exist yet")
    topics.set_defaults(handler=_topics)

    for part in PARTS:
        importlib.import_module(part).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure(args.log_level, args.log_json)
    handler: Handler = args.handler
    started = time.monotonic()
    try:
        return handler(args)
    except (ConfigError, ValidationError) as exc:
        # a setting that cannot work: one line, and the exit code of a usage error
        error = config_error(exc) if isinstance(exc, ValidationError) else exc
        print(f"ConfigError: {error}", file=sys.stderr)
        return 2
    except EdmlError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted after {time.monotonic() - started:.1f} s", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
