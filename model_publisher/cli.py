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


def _publish_set(args: argparse.Namespace, settings: Any) -> int:
    from model_publisher.publish import publish_set

    fleet, verdicts = publish_set(args.model_dir, args.name, settings, args.version)
    m = fleet.metadata
    print(f"published {m.name} {m.version} as the fleet model, routed by {m.routed_by} "
          f"(offset {fleet.offset})")
    print(f"  {'key':<16} {'keyed MAE':>10} {'fleet MAE':>10}")
    for v in sorted(verdicts, key=lambda v: v.key):
        keyed = "" if v.keyed_mae_minutes is None else f"{v.keyed_mae_minutes:.3f}"
        fleet_mae = "" if v.fleet_mae_minutes is None else f"{v.fleet_mae_minutes:.3f}"
        said = f"published (offset {v.published.offset})" if v.published else \
            f"not published: {v.verdict}, the fleet model answers it"
        print(f"  {v.key:<16} {keyed:>10} {fleet_mae:>10}  {said}")
    return 0


def _publish(args: argparse.Namespace) -> int:
    settings = _settings()
    if args.set:
        return _publish_set(args, settings)
    from edml.serving_state import parse_policy
    from model_publisher.publish import publish

    policy = parse_policy(args.policy)
    gate = None
    if args.backtest_days is not None:
        from batch_scoring.backtest import recent_trips
        from edml.trip_data import default_trip_data
        from model_publisher.publish import BacktestGate
        from trainer.data import resolve_sources

        sources = resolve_sources(args.backtest_data or [default_trip_data().trips], None)
        cache = Path(".edml/score-cache")
        gate = BacktestGate(recent_trips(sources, args.backtest_days, cache / "trips"),
                            args.backtest_days, args.if_worse, cache)
    done = publish(args.model_dir, args.name, settings, version=args.version,
                   storage_uri=args.storage, mode=args.role, weight=args.weight,
                   policy=policy, retrain_request=args.retrain_request, gate=gate,
                   key=args.key, routed_by=args.routed_by)
    m = done.metadata.candidate or done.metadata
    published_as = done.metadata.rollout.mode if done.metadata.rollout else None
    role = f"as {published_as} beside {done.metadata.version}" if published_as \
        else "as champion"
    print(f"published {m.label} {m.version} {role}\n  storage  {m.storage_uri}\n"
          f"  checksum {m.checksum}\n  topic    {settings.topics.models} offset {done.offset}")
    for key, value in sorted(m.metrics.items()):
        print(f"  {key:<40} {value:.4f}")
    return 0


def _describe(state: Any) -> list[str]:
    """The serving state, as ``edml models status`` and the publish commands print it."""
    lines = [f"{state.label}", f"  champion   {state.version}  ({state.storage_uri})"]
    if state.rollout is not None:
        r = state.rollout
        lines.append(f"  candidate  {r.candidate.version}  {r.mode}"
                     + (f" {r.weight:.0%} of trips" if r.mode == "canary" else "")
                     + f"  since {r.started_at:%Y-%m-%d %H:%M:%S}Z")
        p = r.policy
        lines.append(f"  policy     verdict after {p.min_paired} paired actuals (at most "
                     f"{p.max_paired}); margin {p.margin_seconds:g} s at {p.confidence:.0%}; "
                     f"rollback on failures > {p.max_failure_rate:.2%} or model calls > "
                     f"{p.latency_slo_ms:g} ms")
    else:
        lines.append("  candidate  none")
    if state.previous is not None:
        lines.append(f"  previous   {state.previous.version}")
    lines.append(f"  changed by {state.changed_by or 'publish (before rollouts)'}")
    return lines


def _status(args: argparse.Namespace) -> int:
    from model_publisher.models import status

    found = status(_settings(), args.name, args.key)
    lines = _describe(found.state)
    if found.state.rollout is not None:
        lines.append("  evidence   " + _evidence(found.evidence, found.evidence_error))
    lines += _drift(found)
    print("\n".join(lines))
    return 0


def _drift(found: Any) -> list[str]:
    """The controller's drift findings for the champion and the latest retrain request."""
    lines = [f"  drift      {len(found.drift) or 'no'} finding(s) for {found.state.version}"]
    for e in found.drift[-5:]:
        d = e.drift
        lines.append(f"    {d.detector} {d.statistic:g} (threshold {d.threshold:g}) on "
                     f"{d.window_start}..{d.window_end}: {d.detail}")
    if found.retrain is not None:
        r = found.retrain.retrain
        answered = [v.version for v in (found.state, found.state.candidate)
                    if v is not None and v.retrain_request == r.request_id]
        lines.append(f"  retrain    {r.request_id}: train on {r.train_start}..{r.train_end} "
                     f"({r.reason}); " + (f"answered by {answered[0]}" if answered else
                                          f"requested {found.retrain.at:%Y-%m-%d %H:%M:%S}Z"))
    return lines


def _evidence(d: Any, error: str | None) -> str:
    """The live evidence of a rollout, in one line."""
    if error is not None:
        return f"unavailable: {error}"
    if d is None or not d.paired:
        return "none yet (no paired actuals)"
    line = (f"{d.paired:,} paired trips; MAE champion {d.champion_mae_seconds / 60:.2f} min, "
            f"candidate {d.candidate_mae_seconds / 60:.2f} min")
    if d.mean_diff_seconds is not None and d.ci_low_seconds is not None:
        line += (f"; mean difference {d.mean_diff_seconds:+.1f} s "
                 f"[{d.ci_low_seconds:+.1f}, {d.ci_high_seconds:+.1f}] at {d.confidence:.0%}")
    return line + f"; policy: {d.rule}"


def _promote(args: argparse.Namespace) -> int:
    from model_publisher.models import promote

    done = promote(_settings(), args.name, key=args.key)
    print(f"{done.metadata.label}: {done.metadata.version} is the champion "
          f"(offset {done.offset})")
    return 0


def _withdraw(args: argparse.Namespace) -> int:
    from model_publisher.models import withdraw

    offset = withdraw(_settings(), args.name, args.key)
    print(f"{args.name}[{args.key}]: withdrawn (offset {offset}); the fleet model answers "
          "its trips")
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

    done = rollback(_settings(), args.name, args.to, args.key)
    print(f"{done.metadata.label}: {done.metadata.version} serves alone (offset {done.offset})")
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
    publish.add_argument("--as", dest="role", choices=["shadow", "canary"],
                         help="a candidate beside the current champion instead of the new "
                         "champion: shadow (scored, published only to the shadow topic) or "
                         "canary (answers for --weight of the trips)")
    publish.add_argument("--weight", type=float, default=0.1,
                         help="canary: the share of trips the candidate answers (default 0.1)")
    publish.add_argument("--policy", action="append", default=[], metavar="NAME=VALUE",
                         help="a rollout policy setting over its default, e.g. min_paired=500 "
                         "(min_paired, max_paired, margin_seconds, confidence, "
                         "max_failure_rate, latency_slo_ms; see the README, Rollouts)")
    publish.add_argument("--retrain-request", metavar="ID",
                         help="the retrain request this version answers (a CI pipeline "
                         "triggered by a retrain_requested event passes its request id)")
    publish.add_argument("--backtest-days", type=int, metavar="DAYS",
                         help="first score the version and the current champion on the "
                         "latest DAYS days of --backtest-data, and refuse a version worse by "
                         "the rollout policy's margin (see --if-worse); the figures join the "
                         "version's metrics. With --key: the key's trips of those days, "
                         "against the key's champion (its first version: against the fleet "
                         "model)")
    publish.add_argument("--backtest-data", action="append", metavar="SOURCE",
                         help="trip files to backtest on, repeatable (TLC files or TripRequest "
                         "rows with duration_seconds, as edml score reads them). Default: the "
                         "shared samples where present, else the trips shipped with edml")
    publish.add_argument("--if-worse", choices=["refuse", "shadow"], default="refuse",
                         help="a version the backtest finds worse: refuse it (default), or "
                         "publish it only as a shadow candidate")
    publish.add_argument("--routed-by", metavar="FIELD",
                         help="a fleet model: the request field that routes trips to keyed "
                         "models (pickup_zone_id, dropoff_zone_id, pickup_borough, "
                         "dropoff_borough, vendor_id); default: the current champion's")
    publish.add_argument("--key", metavar="KEY",
                         help="publish a keyed model of the family NAME: it answers the trips "
                         "whose routing field gives KEY (a zone id as '132', a borough as "
                         "'queens' or 'staten-island', a vendor id as '2'); the fleet model "
                         "answers every other trip")
    publish.add_argument("--set", action="store_true",
                         help="MODEL_DIR is the OUT of edml train --per: publish its fleet "
                         "model (routed by the field it was trained per) and each key's model "
                         "that beat the fleet model on that key's validation trips")
    publish.set_defaults(handler=_publish)

    models = sub.add_parser("models", help="list, inspect and roll back published models",
                            description="Read the model topic (latest per name wins).")
    verbs = models.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs.add_parser("list", help="the current version of every model").set_defaults(
        handler=_list)
    hist = verbs.add_parser("history", help="every version of one model, oldest first")
    hist.add_argument("name", metavar="NAME")
    hist.set_defaults(handler=_history)
    stat = verbs.add_parser("status", help="champion, candidate, mode, weight and policy")
    stat.add_argument("name", metavar="NAME")
    stat.add_argument("--key", metavar="KEY", help="the family's keyed model KEY")
    stat.set_defaults(handler=_status)
    prom = verbs.add_parser("promote", help="make the candidate the champion now")
    prom.add_argument("name", metavar="NAME")
    prom.add_argument("--key", metavar="KEY", help="promote the family's keyed model KEY's "
                      "candidate")
    prom.set_defaults(handler=_promote)
    back = verbs.add_parser("rollback", help="withdraw the candidate, or (without one) serve "
                            "the previous champion again; --to restores any stored version")
    back.add_argument("name", metavar="NAME")
    back.add_argument("--to", metavar="VERSION", help="the version to restore (its checksum "
                      "is verified in storage first)")
    back.add_argument("--key", metavar="KEY", help="roll back the family's keyed model KEY")
    back.set_defaults(handler=_rollback)
    out = verbs.add_parser("withdraw", help="withdraw a keyed model: the fleet model "
                           "answers its key's trips again")
    out.add_argument("name", metavar="NAME")
    out.add_argument("--key", metavar="KEY", required=True,
                     help="the family's keyed model to withdraw (a fleet model is replaced "
                     "by publishing, never withdrawn)")
    out.set_defaults(handler=_withdraw)
    verbs.add_parser("version", help="print a new version name (what publish would choose), "
                     "for a CI pipeline to pass between stages").set_defaults(handler=_version)
