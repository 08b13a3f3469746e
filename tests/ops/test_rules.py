"""The alert rules and their wiring: promtool accepts them and their unit tests pass, every
alert is tested both ways, and the generated files are what their sources make."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from ops.alerts import ALERT_CASES, RULES, load_rules, prometheus_rule, rules
from ops.build import ALERT_TESTS, PROMETHEUS_RULE, generated
from ops.dashboard import DASHBOARD, panel_queries
from services.metrics import Metrics
from tests.ops.prometheus import binary

OPS = RULES.parent.parent


def _promtool(*args: str | Path, cwd: Path | None = None) -> str:
    out = subprocess.run([binary("promtool"), *map(str, args)], capture_output=True,
                         text=True, timeout=120, cwd=cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_promtool_accepts_the_rules_and_the_plain_scrape_config() -> None:
    assert "SUCCESS: 11 rules found" in _promtool("check", "rules", RULES)
    assert "is valid prometheus config" in _promtool(
        "check", "config", OPS / "prometheus" / "prometheus.yml")


def test_the_rules_unit_tests_pass() -> None:
    assert "SUCCESS" in _promtool("test", "rules", ALERT_TESTS.name, cwd=ALERT_TESTS.parent)


def test_a_wrong_expectation_fails_the_unit_tests(tmp_path: Path) -> None:
    """The unit tests can fail: promtool compares what fires with what a case expects."""
    document = yaml.safe_load(ALERT_TESTS.read_text())
    document["rule_files"] = [str(RULES)]
    firing = next(check for group in document["tests"] for check in group["alert_rule_test"]
                  if check["alertname"] == "EdmlModelLoadRefused" and check["exp_alerts"])
    firing["exp_alerts"] = []
    (tmp_path / "wrong.yml").write_text(yaml.safe_dump(document))
    out = subprocess.run([binary("promtool"), "test", "rules", "wrong.yml"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "EdmlModelLoadRefused" in out.stdout + out.stderr


def test_every_alert_has_cases_where_it_fires_and_where_it_stays_silent() -> None:
    fired, silent = set(), set()
    for group in yaml.safe_load(ALERT_CASES.read_text())["tests"]:
        for check in group["alert_rule_test"]:
            (fired if check["exp_alerts"] else silent).add(check["alertname"])
    assert fired == set(rules()) == silent


def test_every_alert_says_how_urgent_what_happened_and_what_to_do() -> None:
    for name, rule in rules().items():
        assert rule["labels"]["severity"] in {"page", "warning"}, name
        assert rule["annotations"]["summary"] and len(rule["annotations"]["runbook"]) > 100


def test_the_generated_files_are_up_to_date() -> None:
    stale = [str(path.relative_to(OPS.parent)) for path, text in generated().items()
             if path.read_text() != text]
    assert not stale, f"run python -m ops.build: {stale}"


def test_the_prometheus_rule_holds_exactly_the_rules() -> None:
    resource = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert resource == prometheus_rule()
    assert resource["spec"] == load_rules()


def _metric_names() -> set[str]:
    """Every series name a worker exports."""
    names = set()
    for family in Metrics().registry.collect():
        names |= {sample.name for sample in family.samples}
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"],
                    "summary": ["_sum", "_count"]}.get(family.type, [""])
        names |= {family.name + suffix for suffix in suffixes}
    return names


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_metric_queried_is_one_the_workers_export(source: str) -> None:
    if source == "alerts":
        exprs = [rule["expr"] for rule in rules().values()]
    else:
        exprs = [e for q in panel_queries(yaml.safe_load(DASHBOARD.read_text())).values()
                 for e in q]
    used = {name for expr in exprs for name in re.findall(r"\bedml_[a-z_]+\b", expr)}
    assert used and used <= _metric_names(), used - _metric_names()
