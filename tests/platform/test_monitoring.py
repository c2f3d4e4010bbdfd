"""monitoring/: every metric in PromQL (rules, dashboard) is one we export; the alert rules
pass `promtool check/test rules` with a firing and a silent case per alert; prometheus.yml,
alertmanager.yml and the compose file are valid and agree (every scrape target defined)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from eodrisk import metrics, monitoring
from tests.platform.test_metrics import realistic_snapshot

MONITORING = monitoring.MONITORING_DIR
DASHBOARD = MONITORING / "grafana" / "dashboards" / "eodrisk.json"
DATASOURCES = MONITORING / "grafana" / "provisioning" / "datasources" / "eodrisk.yml"
RULE_TESTS = Path(__file__).with_name("alerts_test.yml")

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
    """(panel title, PromQL) of the dashboard's Prometheus targets."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
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
    assert set(rules) == {
        "EodRiskPipelineFailed",
        "EodRiskTaskFailed",
        "EodRiskSlaMissed",
        "EodRiskNightMissing",
        "EodRiskQuarantineRateHigh",
        "EodRiskClusterAcquisitionSlow",
        "EodRiskVarJump",
        "EodRiskBacktestZoneChanged",
        "EodRiskMetricsStale",
    }
    for rule in rules.values():
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["annotations"]["summary"]


def test_every_alert_has_a_firing_and_a_silent_promtool_case():
    cases: dict[str, dict[str, int]] = {}
    for group in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in group["alert_rule_test"]:
            kind = "firing" if case["exp_alerts"] else "silent"
            counts = cases.setdefault(case["alertname"], {"firing": 0, "silent": 0})
            counts[kind] += 1
    for rule in alert_rules():
        counts = cases.get(rule["alert"], {"firing": 0, "silent": 0})
        assert counts["firing"] >= 1 and counts["silent"] >= 1, (rule["alert"], counts)
    assert set(cases) == {rule["alert"] for rule in alert_rules()}


def skip_unless_installed(missing: str) -> None:
    """Skip a test needing Debian's Prometheus tools; fail instead when CI requires them."""
    if not missing:
        return
    if os.environ.get("EODRISK_REQUIRE_PROMETHEUS"):
        pytest.fail(f"EODRISK_REQUIRE_PROMETHEUS is set but {missing} is not installed")
    pytest.skip(f"{missing} not installed: run {monitoring.INSTALLER}")


def _tool(name: str) -> str:
    path = shutil.which(name)
    skip_unless_installed("" if path else name)
    return str(path)


def run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_promtool_check_rules():
    result = run(_tool("promtool"), "check", "rules", str(MONITORING / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_test_rules():
    result = run(_tool("promtool"), "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_rules_fails_when_a_rule_changes(tmp_path):
    """The cases pin the thresholds: a looser quarantine rule makes promtool fail."""
    rules = (MONITORING / "alerts.yml").read_text()
    assert "eodrisk_trades_read_rows > 0.01" in rules
    (tmp_path / "monitoring").mkdir()
    (tmp_path / "monitoring" / "alerts.yml").write_text(
        rules.replace("eodrisk_trades_read_rows > 0.01", "eodrisk_trades_read_rows > 0.05")
    )
    (tmp_path / "tests" / "platform").mkdir(parents=True)
    shutil.copy(RULE_TESTS, tmp_path / "tests" / "platform")
    result = run(
        _tool("promtool"), "test", "rules", RULE_TESTS.name, cwd=tmp_path / "tests/platform"
    )
    assert result.returncode != 0
    assert "EodRiskQuarantineRateHigh" in result.stdout + result.stderr


def test_production_configs_are_valid_for_the_real_tools():
    prom = run(
        _tool("promtool"), "check", "config", "--syntax-only", str(MONITORING / "prometheus.yml")
    )
    assert prom.returncode == 0, prom.stdout + prom.stderr
    am = run(_tool("amtool"), "check-config", str(MONITORING / "alertmanager.yml"))
    assert am.returncode == 0, am.stdout + am.stderr
    assert "1 inhibit rules" in am.stdout and "2 receivers" in am.stdout


def test_local_configs_are_the_production_ones_with_local_addresses(tmp_path):
    prom, left_out = monitoring.prometheus_config(
        {"eodrisk-metrics": ["127.0.0.1:9464"], "prometheus": ["127.0.0.1:9090"]},
        alertmanager="127.0.0.1:9093",
        intervals=monitoring.FAST,
    )
    production = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    assert left_out == ["airflow-statsd", "alertmanager"]
    assert [job["job_name"] for job in prom["scrape_configs"]] == ["eodrisk-metrics", "prometheus"]
    assert prom["rule_files"] == [str(MONITORING / "alerts.yml")]
    assert prom["global"]["scrape_interval"] == prom["global"]["evaluation_interval"] == "1s"
    assert prom["global"]["external_labels"] == production["global"]["external_labels"]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prom))
    checked = run(_tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr  # rule file included

    am = monitoring.alertmanager_config(tmp_path, pagerduty_url="http://127.0.0.1:1/v2/enqueue")
    production_am = yaml.safe_load((MONITORING / "alertmanager.yml").read_text())
    assert am["route"] == production_am["route"]
    assert am["inhibit_rules"] == production_am["inhibit_rules"]
    [slack] = am["receivers"][0]["slack_configs"]
    assert slack["api_url_file"] == str(tmp_path / "slack_webhook_url")
    assert monitoring.secret_files() == ["pagerduty_routing_key", "slack_webhook_url"]
    for name in monitoring.secret_files():
        (tmp_path / name).write_text("http://127.0.0.1:1/services/x\n")
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(am))
    checked = run(_tool("amtool"), "check-config", str(tmp_path / "alertmanager.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_alertmanager_pages_critical_alerts_and_posts_every_alert_to_slack():
    """amtool's routing test on the production tree: critical to both, warning to Slack."""
    config = str(MONITORING / "alertmanager.yml")
    for labels, receivers in (
        (["alertname=EodRiskTaskFailed", "severity=critical"], "pagerduty,slack"),
        (["alertname=EodRiskVarJump", "severity=warning"], "slack"),
    ):
        result = run(
            _tool("amtool"), "config", "routes", "test", f"--config.file={config}", *labels
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip() == receivers


def test_dashboard_has_the_panels_operations_asked_for():
    dashboard = json.loads(DASHBOARD.read_text())
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    for needle in ("latency vs sla", "stage durations", "cluster acquisition", "fail",
                   "quarantine rate", "var trend", "run history (postgres)",
                   "var trend, firm and regions (postgres)"):  # fmt: skip
        assert needle in titles, needle
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    datasources = {d["uid"]: d for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    for panel in dashboard["panels"]:
        uid = panel["datasource"]["uid"]
        assert panel["datasource"]["type"] == datasources[uid]["type"], panel["title"]
        for target in panel["targets"]:
            assert ("expr" in target) == (datasources[uid]["type"] == "prometheus"), panel["title"]
        for key in ("x", "y", "w", "h"):
            assert isinstance(panel["gridPos"][key], int)


def test_postgres_datasource_reads_as_risk_reader_with_a_file_password():
    [postgres] = [
        d for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]
        if d["type"] == "grafana-postgresql-datasource"
    ]  # fmt: skip
    assert postgres["user"] == "risk_reader"
    assert postgres["secureJsonData"]["password"].startswith("$__file{/run/secrets/")
    sql = [
        target["rawSql"]
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        for target in panel["targets"]
        if "rawSql" in target
    ]
    assert sql and all(re.search(r"\bfrom bi\.", q) for q in sql)  # risk_reader reads bi only


def compose() -> dict:
    return yaml.safe_load((MONITORING / "docker-compose.yml").read_text())


def test_compose_file_is_valid_against_the_compose_specification():
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = run(
        str(checker),
        "--builtin-schema",
        "vendor.compose-spec",
        str(MONITORING / "docker-compose.yml"),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_scrape_target_is_a_compose_service_or_the_host_exporter():
    services = compose()["services"]
    prometheus = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    for job in prometheus["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                if host == "localhost":  # Prometheus itself
                    assert job["job_name"] == "prometheus"
                    assert f"{port}:{port}" in services["prometheus"]["ports"]
                elif host == "host.docker.internal":  # the live exporter next to Airflow
                    assert job["job_name"] == "eodrisk-metrics"
                    assert (
                        "host.docker.internal:host-gateway" in services["prometheus"]["extra_hosts"]
                    )
                else:
                    assert host in services, f"{job['job_name']}: {target} is no compose service"
                    published = " ".join(services[host].get("ports", []))
                    command = " ".join(services[host].get("command", []))
                    assert f":{port}" in published or f":{port}" in command, target
    [alertmanager] = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanager.split(":")[0] in services


def test_compose_mounts_the_files_of_this_folder():
    services = compose()["services"]
    mounts = " ".join(services["prometheus"]["volumes"])
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml" in mounts
    prometheus = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    for rule_file in prometheus["rule_files"]:
        assert f"./{Path(rule_file).name}:{rule_file}" in mounts
    am_mounts = " ".join(services["alertmanager"]["volumes"])
    assert "./alertmanager.yml:/etc/alertmanager/alertmanager.yml" in am_mounts
    for name in monitoring.secret_files():
        assert f"./secrets/{name}:/etc/alertmanager/secrets/{name}:ro" in am_mounts
    provider = yaml.safe_load(
        (MONITORING / "grafana/provisioning/dashboards/eodrisk.yml").read_text()
    )["providers"][0]
    grafana = services["grafana"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in grafana["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert "risk_reader_password" in grafana["secrets"]
    for variable in re.findall(r"\$\{(\w+)\}", DATASOURCES.read_text()):
        assert variable in grafana["environment"], variable


def _monitoring_up(tmp_path: Path, path_env: str) -> tuple[subprocess.Popen, list[str]]:
    """`eodrisk monitoring up` in a child process, until it prints "Ctrl-C to stop"."""
    process = subprocess.Popen(
        [sys.executable, "-m", "eodrisk.cli", "monitoring", "up", "--dsn",
         "postgresql://nobody@127.0.0.1:1/none", "--data-dir", str(tmp_path),
         "--exporter-port", "0"],
        env={**os.environ, "PATH": path_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line.rstrip())
        if line.startswith("Ctrl-C to stop"):
            break
    return process, lines


def _interrupt(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=30)


def test_monitoring_up_without_the_binaries_says_so_in_one_line(tmp_path):
    process, lines = _monitoring_up(tmp_path, str(Path(sys.executable).parent))
    try:
        notices = [line for line in lines if line.startswith("monitoring:")]
        assert notices == [
            "monitoring: prometheus, alertmanager not installed, run .ci/install-prometheus;"
            " exporter only"
        ], lines
        assert lines[0].startswith("exporter   http://127.0.0.1:")
    finally:
        assert _interrupt(process) == 0


def test_monitoring_up_starts_prometheus_and_alertmanager(tmp_path):
    _tool("prometheus")
    process, lines = _monitoring_up(tmp_path, os.environ["PATH"])
    try:
        exporter = lines[0].split("http://", 1)[1].removesuffix("/metrics")
        [urls] = [line for line in lines if line.startswith("prometheus http://")]
        prometheus_url, alertmanager_url = re.findall(r"http://[\d.:]+", urls)
        for url in (prometheus_url, alertmanager_url):
            with urllib.request.urlopen(f"{url}/-/ready", timeout=5) as response:
                assert response.status == 200
        config = yaml.safe_load((tmp_path / "monitoring" / "prometheus.yml").read_text())
        jobs = {job["job_name"]: job for job in config["scrape_configs"]}
        assert jobs["eodrisk-metrics"]["static_configs"] == [{"targets": [exporter]}]
        assert "no local target for scrape jobs airflow-statsd (left out)" in lines
    finally:
        assert _interrupt(process) == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{prometheus_url}/-/ready", timeout=2)
