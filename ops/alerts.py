"""The alert rules (ops/prometheus/alerts.yml, their one source) and what is made of them:
the PrometheusRule for the Prometheus Operator and promtool's unit-test file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["ALERT_CASES", "RULES", "alert_tests", "load_rules", "prometheus_rule", "rules"]

OPS = Path(__file__).parent
RULES = OPS / "prometheus" / "alerts.yml"
ALERT_CASES = OPS / "prometheus" / "alert_cases.yml"


def load_rules(path: Path = RULES) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def rules(path: Path = RULES) -> dict[str, dict[str, Any]]:
    """Every alerting rule, by alert name."""
    return {rule["alert"]: rule for group in load_rules(path)["groups"]
            for rule in group["rules"] if "alert" in rule}


def prometheus_rule(path: Path = RULES) -> dict[str, Any]:
    """The rules as the Prometheus Operator's PrometheusRule resource."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "edml-scoring",
                     "labels": {"app.kubernetes.io/name": "edml-scoring"}},
        "spec": load_rules(path),
    }


def alert_tests(cases: Path = ALERT_CASES, path: Path = RULES) -> dict[str, Any]:
    """promtool's test file: the cases, each expected alert given its rule's runbook (promtool
    compares every annotation) and the summary the case states."""
    by_name = rules(path)
    document: dict[str, Any] = yaml.safe_load(cases.read_text())
    for group in document["tests"]:
        for check in group.get("alert_rule_test", []):
            runbook = by_name[check["alertname"]]["annotations"]["runbook"]
            for expected in check["exp_alerts"]:
                expected["exp_annotations"] = {"summary": expected.pop("summary"),
                                               "runbook": runbook}
    return document
