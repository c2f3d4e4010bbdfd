"""The monitoring stack for real: Prometheus scrapes the live exporter after a night, and a
failed night's alert travels Prometheus → Alertmanager → the Slack sink (and PagerDuty).

One stack per module (eodrisk.monitoring.MonitoringStack with FAST intervals: scrape,
evaluation and Alertmanager grouping every second) on free loopback ports, over one database:
the migrations, 30 business days of risk rows (eodrisk.report.sample) and the run history
written by the DAG's run recorder (tests/platform/test_status.py's ``night``).
Expected numbers are read from Postgres by the test itself, not from the exporter.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg2
import pytest

from databricks_jobs.postgres import apply_migrations
from eodrisk import metrics, monitoring, status
from eodrisk.report.sample import build_history, insert_history
from eodrisk.slack_sink import SlackSink, read_messages, read_pages
from tests import airflow_env
from tests.platform.test_monitoring import (
    DASHBOARD,
    alert_rules,
    dashboard_exprs,
    metric_names,
    skip_unless_installed,
)
from tests.platform.test_status import night

pytestmark = pytest.mark.integration

GOOD_NIGHT = date(2026, 11, 24)
FAILED_NIGHT = date(2026, 11, 25)
WAIT_S = 30.0


def eventually(what: str, probe: Callable[[], Any], timeout_s: float = WAIT_S) -> Any:
    """Poll ``probe`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


def select(dsn: str, sql: str, role: str | None = None) -> list[tuple]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        if role:
            cur.execute(f"set role {role}")
        cur.execute(sql)
        return cur.fetchall()


@dataclass
class Stack:
    dsn: str
    sink: SlackSink
    prometheus: monitoring.MonitoringStack
    started_at: float


@pytest.fixture(scope="module")
def stack(tmp_path_factory, make_db) -> Iterator[Stack]:
    skip_unless_installed(", ".join(monitoring.missing_binaries()))
    # Airflow's DagBag in a child process takes seconds: measure while the database fills.
    parsing = ThreadPoolExecutor(1).submit(metrics.dag_parse_seconds, airflow_env.DAGS_FOLDER)
    dsn = make_db("eodrisk_mon")
    apply_migrations(dsn)
    insert_history(dsn, build_history(GOOD_NIGHT, days=30))
    root = tmp_path_factory.mktemp("monitoring")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_POSTGRES_EODRISK", status.airflow_postgres_connection(dsn))
        night("postgres_eodrisk", GOOD_NIGHT.isoformat())
        # The callbacks read cluster acquisition/execution from runs/get; without a Databricks
        # workspace here, record them as runs/get reports them for the Databricks tasks.
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute(
                "update risk.task_runs set setup_duration_s = 40 + attempt,"
                " execution_duration_s = duration_s - 2 where task_id !~ '^(wait_for|notify)'"
            )
        collector = metrics.LiveCollector(dsn, max_age_s=0.5, dag_parse_s=parsing.result())
        server, thread = metrics.serve(collector, port=0)
        exporter = f"127.0.0.1:{server.server_address[1]}"
        try:
            with (
                SlackSink(root / "slack.jsonl") as sink,
                monitoring.MonitoringStack(
                    root / "stack", exporter=exporter, sink=sink, intervals=monitoring.FAST
                ) as prometheus,
            ):
                yield Stack(dsn, sink, prometheus, time.time())
        finally:
            server.shutdown()
            thread.join(5)


@dataclass
class Scraped:
    """Every eodrisk series Prometheus holds for the good night, with its raw samples.

    Captured once, before any test records the failed night, so the tests on the good
    night do not depend on the order they run in.
    """

    stack: Stack
    series: list[dict[str, Any]]

    def newest(self, name: str) -> float | None:
        """Timestamp of the newest sample of any series of metric ``name``."""
        return max(
            (
                float(t)
                for s in self.series
                if s["metric"]["__name__"] == name
                for t, _ in s["values"]
            ),
            default=None,
        )

    def value(self, name: str, **labels: str) -> float:
        """Latest value of the one series of ``name`` with ``labels``."""
        [match] = [
            s
            for s in self.series
            if s["metric"]["__name__"] == name and labels.items() <= s["metric"].items()
        ]
        return float(match["values"][-1][1])


@pytest.fixture(scope="module")
def scraped(stack) -> Scraped:
    """The good night, once Prometheus has scraped the exporter after the stack started."""
    eventually(
        "a successful scrape of the exporter",
        lambda: [
            t
            for t in stack.prometheus.targets()
            if t["labels"]["job"] == "eodrisk-metrics"
            and t["health"] == "up"
            and stack.prometheus.query(
                f"timestamp(eodrisk_pipeline_last_run_success) > {stack.started_at}"
            )
        ],
    )
    return Scraped(stack, stack.prometheus.query('{__name__=~"eodrisk_.+|up"}[30s]'))


def dashboard_metric_names() -> set[str]:
    return {name for _, expr in dashboard_exprs() for name in metric_names(expr)}


def test_every_dashboard_metric_has_a_current_sample(scraped):
    names = dashboard_metric_names()
    assert len(names) >= 15
    newest = {name: scraped.newest(name) for name in sorted(names)}
    stale = {n: t for n, t in newest.items() if t is None or t < scraped.stack.started_at}
    assert not stale, f"dashboard metrics without a sample since the stack started: {stale}"
    assert scraped.value("up", job="eodrisk-metrics") == 1


def test_scraped_values_are_postgres_values(scraped):
    """What Prometheus holds for the night equals what the pipeline stored."""
    dsn = scraped.stack.dsn
    [(firm_var, firm_es)] = select(
        dsn,
        "select var_99_1d_usd, es_975_1d_usd from risk.var_summary"
        f" where business_date = '{GOOD_NIGHT}' and level = 'firm'",
    )
    assert scraped.value("eodrisk_var_99_1d_usd", level="firm") == pytest.approx(firm_var)
    assert scraped.value("eodrisk_es_975_1d_usd", level="firm") == pytest.approx(firm_es)
    [(previous_var,)] = select(
        dsn,
        "select var_99_1d_usd from risk.var_summary where level = 'firm' and business_date ="
        f" (select max(business_date) from risk.var_summary where business_date < '{GOOD_NIGHT}')",
    )
    previous = scraped.value("eodrisk_var_99_1d_previous_usd", level="firm")
    assert previous == pytest.approx(previous_var)
    audits = select(
        dsn,
        "select region, rows_read, rows_quarantined from risk.ingest_audit"
        f" where business_date = '{GOOD_NIGHT}'",
    )
    assert len(audits) == 3
    for region, read, quarantined in audits:
        assert scraped.value("eodrisk_trades_read_rows", region=region) == read
        assert scraped.value("eodrisk_trades_quarantined_rows", region=region) == quarantined
    [(latency,)] = select(
        dsn, f"select latency_s from risk.pipeline_runs where business_date = '{GOOD_NIGHT}'"
    )
    assert scraped.value("eodrisk_pipeline_latency_seconds") == pytest.approx(latency)
    [(zone,)] = select(
        dsn,
        "select zone from risk.backtest_summary"
        f" where business_date = '{GOOD_NIGHT}' and level = 'firm'",
    )
    assert scraped.value("eodrisk_backtest_zone", level="firm", zone=zone) == 1
    assert scraped.value("eodrisk_pipeline_last_run_success", dag_id="eod_risk") == 1


def test_prometheus_loaded_every_alert_rule(stack):
    loaded = {rule["name"] for group in stack.prometheus.rule_groups() for rule in group["rules"]}
    assert loaded == {rule["alert"] for rule in alert_rules()}


def test_dashboard_postgres_panels_run_as_risk_reader(stack):
    """Each rawSql of the dashboard, Grafana's $__timeFilter expanded, as risk_reader."""
    panels = {
        panel["title"]: target["rawSql"]
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        for target in panel["targets"]
        if "rawSql" in target
    }
    assert len(panels) == 3
    rows = {}
    for title, sql in panels.items():
        expanded = re.sub(
            r"\$__timeFilter\((\w+)\)", r"\1 between '2026-01-01' and '2026-12-31'", sql
        )
        assert "$__" not in expanded, title
        rows[title] = select(stack.dsn, expanded, role="risk_reader")
    assert (GOOD_NIGHT, "success") in [row[:2] for row in rows["Run history (Postgres)"]]
    firm_trend = [
        (when.date(), value)
        for when, node, value in rows["VaR trend, firm and regions (Postgres)"]
        if node == "FIRM"
    ]
    assert firm_trend == select(
        stack.dsn,
        "select business_date, var_99_1d_usd from risk.var_summary"
        " where level = 'firm' order by business_date",
    )
    assert len(firm_trend) == 30
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        select(stack.dsn, "select count(*) from risk.pipeline_runs", role="risk_reader")


def test_a_failed_night_reaches_slack_and_pagerduty_through_alertmanager(scraped):
    stack = scraped.stack
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_POSTGRES_EODRISK", status.airflow_postgres_connection(stack.dsn))
        night("postgres_eodrisk", FAILED_NIGHT.isoformat(), fail="load_reporting")
    recorded = time.monotonic()

    def slack_alert() -> list[dict]:
        return [
            m
            for m in read_messages(stack.sink.messages_file)
            if m["path"] != "/v2/enqueue"
            and any("EodRiskTaskFailed" in a.get("title", "") for a in m["payload"]["attachments"])
        ]

    [message] = eventually("the Slack message of EodRiskTaskFailed", slack_alert)
    [attachment] = message["payload"]["attachments"]
    assert attachment["title"] == "[FIRING] EodRiskTaskFailed (critical)"
    assert "EOD risk: load_reporting (FIRM) failed after its retries" in attachment["text"]
    assert message["payload"]["channel"] == "#eodrisk-ops"
    assert attachment["title_link"].startswith(stack.prometheus.alertmanager_url)
    assert message["received_monotonic_s"] - recorded < 15  # seconds, not minutes

    [page] = eventually(
        "the PagerDuty event",
        lambda: [
            p
            for p in read_pages(stack.sink.messages_file)
            if "EodRiskTaskFailed" in p["payload"]["payload"]["summary"]
        ],
    )
    event = page["payload"]
    assert event["event_action"] == "trigger"
    assert event["routing_key"] == monitoring.LOCAL_PAGERDUTY_KEY
    assert event["payload"]["severity"] == "critical"
    prometheus_link = f"Source: {stack.prometheus.prometheus_url}/graph?"
    assert prometheus_link in event["payload"]["custom_details"]["firing"]

    # The run-level alert fires too, but the task's alert inhibits it: one page, not two.
    alerts = {a["labels"]["alertname"]: a for a in stack.prometheus.alerts()}
    assert alerts["EodRiskPipelineFailed"]["status"]["state"] == "suppressed"
    assert alerts["EodRiskPipelineFailed"]["status"]["inhibitedBy"]
    summaries = [p["payload"]["payload"]["summary"] for p in read_pages(stack.sink.messages_file)]
    assert not [s for s in summaries if "EodRiskPipelineFailed" in s]
