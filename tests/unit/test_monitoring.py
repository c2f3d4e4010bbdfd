"""monitoring/: files parse, and every metric in PromQL (rules, dashboard) is one we export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from eodrisk import metrics
from tests.unit.test_metrics import realistic_snapshot

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "eodrisk.json"

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_RANGES = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "atan2", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, labels and keywords removed)."""
    expr = _STRINGS.sub(" ", expr)
    expr = _MATCHERS.sub(" ", expr)
    expr = _GROUPING.sub(" ", expr)
    expr = _RANGES.sub(" ", expr)
    return {m for m in _IDENT.findall(expr) if m.lower() not in _KEYWORDS}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('eodrisk_a{dag_id="x"} == 0', {"eodrisk_a"}),
        ("max by (task_id, region) (eodrisk_b) > 600", {"eodrisk_b"}),
        ("time() - eodrisk_c > 36 * 3600", {"eodrisk_c"}),
        ("rate(airflow_x[5m]) / on(dag_id) group_left eodrisk_d", {"airflow_x", "eodrisk_d"}),
        ("sum(eodrisk_e) / sum(eodrisk_f)", {"eodrisk_e", "eodrisk_f"}),
    ],
)
def test_metric_name_extraction(expr, names):
    assert metric_names(expr) == names


def alert_rules() -> list[dict]:
    document = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


@pytest.fixture(scope="module")
def exported() -> set[str]:
    registry = metrics.build_registry(realistic_snapshot(), dag_parse_s={"eod_risk.py": 0.2})
    return metrics.exported_metric_names(registry)


def test_every_promql_metric_is_exported(exported):
    used: dict[str, set[str]] = {}
    for rule in alert_rules():
        for name in metric_names(rule["expr"]):
            used.setdefault(name, set()).add(f"alert {rule['alert']}")
    for title, expr in dashboard_exprs():
        for name in metric_names(expr):
            used.setdefault(name, set()).add(f"panel {title!r}")
    unknown = {name: sorted(where) for name, where in used.items() if name not in exported}
    assert not unknown, f"PromQL uses metrics the exporter does not export: {unknown}"
    assert len(used) >= 10


def test_alert_rules_cover_the_operational_failures():
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert {
        "EodRiskPipelineFailed",
        "EodRiskSlaMissed",
        "EodRiskQuarantineRateHigh",
        "EodRiskClusterAcquisitionSlow",
    } <= set(rules)
    assert "eodrisk_pipeline_sla_margin_seconds" in rules["EodRiskSlaMissed"]["expr"]
    assert "< 0" in rules["EodRiskSlaMissed"]["expr"]
    for rule in rules.values():
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["annotations"]["summary"]


def test_dashboard_has_the_panels_operations_asked_for():
    dashboard = json.loads(DASHBOARD.read_text())
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    for needle in ("latency vs sla", "stage durations", "cluster acquisition", "fail",
                   "quarantine rate", "var trend"):  # fmt: skip
        assert needle in titles, needle
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    datasource_uid = yaml.safe_load(
        (MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]["uid"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource_uid, panel["title"]
        for key in ("x", "y", "w", "h"):
            assert isinstance(panel["gridPos"][key], int)


def test_prometheus_compose_and_provisioning_parse_and_agree():
    prometheus = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yml"]
    jobs = {job["job_name"] for job in prometheus["scrape_configs"]}
    assert {"node-textfile", "eodrisk-metrics"} <= jobs
    compose = yaml.safe_load((MONITORING / "docker-compose.yml").read_text())
    assert {"prometheus", "grafana", "node-exporter"} <= set(compose["services"])
    mounts = " ".join(compose["services"]["prometheus"]["volumes"])
    assert "./alerts.yml:/etc/prometheus/alerts.yml" in mounts
    node = compose["services"]["node-exporter"]
    assert "--collector.textfile.directory=/textfile" in node["command"]
    assert (MONITORING / "textfile").is_dir()
    provider = yaml.safe_load(
        (MONITORING / "grafana/provisioning/dashboards/eodrisk.yml").read_text()
    )["providers"][0]
    grafana_mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in grafana_mounts
