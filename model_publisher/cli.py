"""``edml publish`` and ``edml models``: their options."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edml.quiet import quiet_tensorflow

__all__ = ["register"]


def _settings() -> Any:
    quiet_tensorflow()
    from model_publisher.settings import PublisherSettings

    return PublisherSettings()


def _publish(args: argparse.Namespace) -> int:
    settings = _settings()
    from model_publisher.publish import publish

    done = publish(args.model_dir, args.name, settings, version=args.version,
                   storage_uri=args.storage)
    m = done.metadata
    print(f"published {m.name} {m.version}\n  storage  {m.storage_uri}\n  checksum {m.checksum}"
          f"\n  topic    {settings.topics.models} offset {done.offset}")
    for key, value in sorted(m.metrics.items()):
        print(f"  {key:<40} {value:.4f}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from model_publisher.models import latest

    current = latest(_settings())
    if not current:
        print("no models published")
    for name, entry in sorted(current.items()):
        m = entry.metadata
        mae = m.metrics.get("mae_minutes")
        print(f"{name}  {m.version}  offset {entry.offset}  {m.storage_uri}"
              + (f"  MAE {mae:.3f} min" if mae is not None else ""))
    return 0


def _history(args: argparse.Namespace) -> int:
    from model_publisher.models import history

    entries = history(_settings(), args.name)
    if not entries:
        print(f"no versions of {args.name}")
    for entry in entries:
        m = entry.metadata
        print(f"offset {entry.offset}  {m.version}  created {m.created_at:%Y-%m-%d %H:%M:%S}"
              f"  {m.checksum[:19]}  {m.storage_uri}")
    return 0


def _version(args: argparse.Namespace) -> int:
    from model_publisher.version import git_commit, make_version

    print(make_version(git_commit(_settings().git_commit)))
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from model_publisher.models import rollback

    done = rollback(_settings(), args.name, args.to)
    print(f"{args.name} is back on {done.metadata.version} (offset {done.offset})")
    return 0


def register(sub: Any) -> None:
    publish = sub.add_parser(
        "publish", help="upload a SavedModel, verify it, and announce it on the model topic",
        description="Smoke-test MODEL_DIR (load it, check its signature against the "
        "TripRequest schema, score a few trips), upload it to STORAGE/NAME/VERSION/ (never "
        "over an existing version), and produce one ModelMetadata event keyed by NAME to the "
        "model topic. Kafka, storage and topic settings come from EDML_* variables.")
    publish.add_argument("model_dir", type=Path, metavar="MODEL_DIR",
                         help="the SavedModel folder (edml train writes OUT/saved_model)")
    publish.add_argument("--name", required=True, help="model name: the key on the topic")
    publish.add_argument("--version", help="default: <edml version>-<UTC yyyymmddHHMMSS>-"
                         "<short git sha>")
    publish.add_argument("--storage", help="gs://BUCKET/PREFIX or file://DIR; default "
                         "EDML_STORAGE_URI")
    publish.set_defaults(handler=_publish)

    models = sub.add_parser("models", help="list, inspect and roll back published models",
                            description="Read the model topic (latest per name wins).")
    verbs = models.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs.add_parser("list", help="the current version of every model").set_defaults(
        handler=_list)
    hist = verbs.add_parser("history", help="every version of one model, oldest first")
    hist.add_argument("name", metavar="NAME")
    hist.set_defaults(handler=_history)
    back = verbs.add_parser("rollback", help="make an earlier stored version current again, "
                            "after verifying its checksum in storage")
    back.add_argument("name", metavar="NAME")
    back.add_argument("--to", required=True, metavar="VERSION", help="the version to restore")
    back.set_defaults(handler=_rollback)
    verbs.add_parser("version", help="print a new version name (what publish would choose), "
                     "for a CI pipeline to pass between stages").set_defaults(handler=_version)
