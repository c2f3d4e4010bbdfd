"""Critical-failure paging, the richer success summary, run-history callbacks, DAG wiring."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from eodrisk.slack_sink import SlackSink, pagerduty_events_connection, read_messages, read_pages
from tests import airflow_env
from tests.dag.test_dag_callbacks import (
    LOG_URL,
    PROVIDER_ERROR,
    REGIONS,
    RUN_PAGE,
    SUMMARY,
    FakeTaskInstance,
    all_text,
    assert_valid_blocks,
    failure_context,
)

airflow_env.isolate()  # before airflow is imported
if str(airflow_env.DAGS_FOLDER) not in sys.path:
    sys.path.append(str(airflow_env.DAGS_FOLDER))  # as Airflow does for the DAG bundle

from eodrisk_dag import callbacks, messages, run_history  # noqa: E402 - needs the dags folder

RUN_ID = "scheduled__2026-11-24T22:00:00+00:00"


@pytest.fixture
def sink(tmp_path, monkeypatch):
    with SlackSink(tmp_path / "sink.jsonl") as running:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SLACK_EODRISK", airflow_env.slack_webhook_connection(running.url)
        )
        monkeypatch.setenv(
            "AIRFLOW_CONN_PAGERDUTY_EODRISK", pagerduty_events_connection(running.base_url)
        )
        yield running


def critical_context(task_id="firm_risk", **fields):
    context = failure_context(RuntimeError(PROVIDER_ERROR), task_id=task_id, **fields)
    context["ti"].xcoms = {(task_id, "run_page_url"): RUN_PAGE}
    context["ti"].run_id = RUN_ID
    return context


# ----------------------------------------------------------------------------- summary


def test_summary_has_change_vs_yesterday_backtest_rows_and_latency_vs_sla():
    summary = {**SUMMARY, "backtest": {"zone": "yellow", "exceptions": 6}}
    message = messages.build_summary_message(
        dag_id="eod_risk",
        business_date="2026-11-24",
        summary=summary,
        firm_run_page_url=RUN_PAGE,
        log_url=LOG_URL,
        previous=("2026-11-23", 1_200_000.0),
        latency_s=1234.0,
        sla_deadline="2026-11-25 06:00 GMT",
        sla_margin_s=27_000.0,
    )
    assert_valid_blocks(message)
    text = all_text(message)
    for needle in (
        "+$34,568 (+2.9%) vs 2026-11-23",  # 1,234,567.89 - 1,200,000
        "yellow, 6 exceptions",
        "89,965 accepted of 90,000 read, 35 quarantined (0.04%)",
        "Latency* 20m34s",
        "deadline 2026-11-25 06:00 GMT",
        "within SLA, 7h30m to spare",
        f"<{RUN_PAGE}|Firm risk run>",
        f"<{LOG_URL}|Airflow>",
    ):
        assert needle in text, needle
    # The phone notification alone carries VaR, change and the SLA verdict.
    assert "$1,234,568 (+$34,568 (+2.9%) vs 2026-11-23 vs previous)" in message["text"]
    assert "within SLA" in message["text"]


def test_summary_says_when_the_sla_was_missed_and_when_nothing_is_known():
    message = messages.build_summary_message(
        dag_id="eod_risk",
        business_date="2026-11-24",
        summary=SUMMARY,
        firm_run_page_url=None,
        latency_s=30_000.0,
        sla_deadline="2026-11-25 06:00 GMT",
        sla_margin_s=-600.0,
    )
    text = all_text(message)
    assert ":warning: SLA missed by 10m00s" in text
    assert "n/a vs previous" in message["text"]
    assert "Backtest" not in text  # no zone in this summary: no empty field


def test_summary_latency_comes_from_the_run_and_task_start_times(sink, monkeypatch):
    monkeypatch.setattr(callbacks, "fetch_firm_summary", lambda **_: SUMMARY)
    start = datetime(2026, 11, 24, 22, 0, 3, tzinfo=UTC)
    callbacks.post_firm_summary(
        dag_id="eod_risk",
        business_date="2026-11-24",
        firm_run_id=100,
        firm_run_page_url=RUN_PAGE,
        databricks_conn_id="databricks_default",
        slack_webhook_conn_id="slack_eodrisk",
        firm_summary_task_key="firm_aggregation",
        run_started_at=start,
        figures_ready_at=start + timedelta(minutes=9, seconds=5),
        sla_deadline=datetime(2026, 11, 25, 6, 0, tzinfo=UTC),
    )
    [record] = read_messages(sink.messages_file)
    assert "Latency 9m05s · deadline 2026-11-25 06:00 GMT" in record["payload"]["text"]


# ----------------------------------------------------------------------------- PagerDuty


def test_page_event_for_a_critical_failure():
    event = messages.build_page_event(
        dag_id="eod_risk",
        run_id=RUN_ID,
        task_id="load_reporting",
        region=None,
        business_date="2026-11-24",
        reason="load_reporting failed",
        error="AirflowException: " + PROVIDER_ERROR + " token=s3cr3t",
        run_page_url=RUN_PAGE,
        log_url=LOG_URL,
    )
    assert event["severity"] == "critical"
    assert event["dedup_key"] == f"eod_risk/{RUN_ID}/load_reporting"
    assert event["summary"].startswith("eod_risk 2026-11-24: load_reporting failed: ValueError")
    assert len(event["summary"]) <= 1024
    assert event["links"] == [
        {"href": RUN_PAGE, "text": "Databricks run"},
        {"href": LOG_URL, "text": "Airflow log"},
    ]
    assert "s3cr3t" not in json.dumps(event)
    assert event["custom_details"]["region"] == "firm"


@pytest.mark.parametrize("task_id", ["firm_risk", "load_reporting"])
def test_critical_failures_page_through_the_provider(sink, task_id):
    alert = callbacks.PagerDutyCriticalAlert(
        pagerduty_events_conn_id="pagerduty_eodrisk",
        critical_tasks=("firm_risk", "load_reporting"),
        regions=REGIONS,
    )
    alert(critical_context(task_id))
    [page] = read_pages(sink.messages_file)
    event = page["payload"]
    assert event["routing_key"] == "eodrisk-local-key"
    assert event["event_action"] == "trigger"
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["component"] == task_id
    assert "header mismatch in trades_20261124.csv" in event["payload"]["summary"]
    assert {link["href"] for link in event["links"]} == {RUN_PAGE, LOG_URL}
    assert event["dedup_key"] == f"eod_risk/{RUN_ID}/{task_id}"


def test_regional_failures_go_to_slack_only(sink):
    alert = callbacks.PagerDutyCriticalAlert(
        pagerduty_events_conn_id="pagerduty_eodrisk",
        critical_tasks=("firm_risk", "load_reporting"),
        regions=REGIONS,
    )
    alert(critical_context("data_ingestion.ingest_apac"))
    assert read_pages(sink.messages_file) == []


def test_paging_never_raises(monkeypatch, caplog):
    monkeypatch.delenv("AIRFLOW_CONN_PAGERDUTY_EODRISK", raising=False)
    alert = callbacks.PagerDutyCriticalAlert(
        pagerduty_events_conn_id="pagerduty_eodrisk", critical_tasks=("firm_risk",), regions=()
    )
    with caplog.at_level(logging.ERROR):
        alert(critical_context())
        alert({})
    assert "Could not page the critical failure" in caplog.text


def test_a_late_run_pages_with_the_deadline_alerts_dedup_key(sink):
    deadline = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
    callbacks.PageMissedDeadline(pagerduty_events_conn_id="pagerduty_eodrisk")(
        {
            "dag_id": "eod_risk",
            "run_id": RUN_ID,
            "business_date": "2026-11-24",
            "state": "success",
            "ended_at": deadline + timedelta(minutes=12),
            "sla_deadline": deadline,
        }
    )
    [page] = read_pages(sink.messages_file)
    assert page["payload"]["dedup_key"] == f"eod_risk/{RUN_ID}/deadline"
    assert (
        "missed the business deadline 2026-11-25 06:00 GMT by 720s"
        in (page["payload"]["payload"]["summary"])
    )


# ----------------------------------------------------------------------------- run history


def test_task_run_record_from_a_callback_context():
    start = datetime(2026, 11, 24, 22, 5, tzinfo=UTC)
    context = critical_context("data_ingestion.ingest_apac")
    ti = context["ti"]
    ti.start_date, ti.end_date = start, start + timedelta(seconds=42.5)
    ti.xcoms[("data_ingestion.ingest_apac", "run_id")] = 41
    record = run_history.task_run_record(
        context, state="failed", regions=REGIONS, databricks_conn_id=None
    )
    assert record["region"] == "APAC"
    assert record["attempt"] == 2
    assert record["duration_s"] == 42.5
    assert record["business_date"] == "2026-11-24"
    assert record["databricks_run_id"] == 41
    assert record["run_page_url"] == RUN_PAGE
    assert record["log_url"] == LOG_URL
    assert record["error"].startswith("ValueError: header mismatch")


def test_databricks_durations_sum_the_latest_attempt_of_each_task():
    run = {
        "setup_duration": 0,
        "execution_duration": 0,
        "tasks": [
            {"task_key": "a", "attempt_number": 0, "setup_duration": 9e3, "execution_duration": 1},
            {
                "task_key": "a",
                "attempt_number": 1,
                "setup_duration": 2.5e3,
                "execution_duration": 3e4,
            },
            {
                "task_key": "b",
                "attempt_number": 0,
                "setup_duration": 5e2,
                "execution_duration": 2e3,
            },
        ],
    }
    assert run_history.databricks_durations(run) == (3.0, 32.0)
    assert run_history.databricks_durations({"tasks": []}) == (None, None)


def test_pipeline_run_record_uses_the_dag_run_times_and_the_deadline():
    logical = datetime(2026, 11, 24, 22, 0, tzinfo=UTC)
    dag_run = SimpleNamespace(
        dag_id="eod_risk",
        run_id=RUN_ID,
        run_type="scheduled",
        logical_date=logical,
        start_date=logical + timedelta(seconds=4),
        end_date=logical + timedelta(hours=8, minutes=1),
    )
    ti = FakeTaskInstance(task_id="load_reporting", state="failed")
    record = run_history.pipeline_run_record(
        {"dag_run": dag_run, "ti": ti, "ds": "2026-11-24", "params": {}},
        state="failed",
        deadline_after=timedelta(hours=8),
    )
    assert record["sla_deadline"] == logical + timedelta(hours=8)
    assert record["sla_met"] is False
    assert record["latency_s"] == 8 * 3600 + 60 - 4
    assert record["failed_tasks"] == ["load_reporting"]


def test_a_manual_rerun_of_a_past_date_has_its_latency_but_no_deadline_and_no_page():
    """A rerun of last week's night ends days after that night's deadline: not a miss."""
    logical = datetime(2026, 11, 24, 22, 0, tzinfo=UTC)
    dag_run = SimpleNamespace(
        dag_id="eod_risk",
        run_id="manual__2026-11-30T10:00:00+00:00",
        run_type="manual",
        logical_date=logical,
        start_date=logical + timedelta(days=5, hours=12),
        end_date=logical + timedelta(days=5, hours=12, minutes=9),
    )
    record = run_history.pipeline_run_record(
        {"dag_run": dag_run, "ds": "2026-11-24", "params": {}},
        state="success",
        deadline_after=timedelta(hours=8),
    )
    assert (record["sla_deadline"], record["sla_met"]) == (None, None)
    assert record["latency_s"] == 9 * 60
    pages = []
    record_run = run_history.RecordPipelineRun(
        state="success",
        postgres_conn_id="postgres_eodrisk",
        deadline_after=timedelta(hours=8),
        on_missed_sla=pages.append,
    )
    record_run({"dag_run": dag_run, "ds": "2026-11-24", "params": {}})  # no Postgres here
    assert pages == []
    scheduled = SimpleNamespace(**{**vars(dag_run), "run_type": "scheduled"})
    record_run({"dag_run": scheduled, "ds": "2026-11-24", "params": {}})
    assert [p["sla_deadline"] for p in pages] == [logical + timedelta(hours=8)]
    message = messages.build_summary_message(
        dag_id="eod_risk",
        business_date="2026-11-24",
        summary=SUMMARY,
        firm_run_page_url=None,
        latency_s=record["latency_s"],
        sla_deadline=None,
        sla_margin_s=None,
    )
    text = all_text(message)
    assert "Latency* 9m00s · not a scheduled run: no business deadline" in text
    assert "SLA" not in text


def test_history_callbacks_never_raise_and_stay_fast(monkeypatch, caplog):
    monkeypatch.setenv(
        "AIRFLOW_CONN_POSTGRES_EODRISK",
        json.dumps(
            {"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "schema": "x",
             "extra": {"connect_timeout": 2}}
        ),
    )  # fmt: skip
    record_task = run_history.RecordTaskRun(
        state="success",
        postgres_conn_id="postgres_eodrisk",
        databricks_conn_id="databricks_default",
        regions=REGIONS,
    )
    record_run = run_history.RecordPipelineRun(
        state="success", postgres_conn_id="postgres_eodrisk", deadline_after=timedelta(hours=8)
    )
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING):
        record_task(critical_context())  # nothing listens on port 1
        record_task({})
        record_run({"dag_run": None})
        record_run({})
    assert time.perf_counter() - started < 5
    assert "Could not record the task run" in caplog.text


# ----------------------------------------------------------------------------- DAG wiring


@pytest.fixture(scope="module")
def dag():
    return airflow_env.load_dag()


def test_every_task_alerts_pages_and_records(dag):
    for task in dag.tasks:
        failure = task.on_failure_callback
        kinds = {type(cb).__name__ for cb in failure}
        assert kinds == {"SlackFailureAlert", "PagerDutyCriticalAlert", "RecordTaskRun"}, task
        assert type(failure[0]).__name__ == "SlackFailureAlert"  # the human first
        assert [cb.state for cb in _as_list(task.on_success_callback)] == ["success"]
        assert [cb.state for cb in _as_list(task.on_retry_callback)] == ["up_for_retry"]
        pager = next(cb for cb in failure if type(cb).__name__ == "PagerDutyCriticalAlert")
        assert pager.critical_tasks == {"firm_risk", "load_reporting"}
        assert pager.pagerduty_events_conn_id == "pagerduty_eodrisk"


def _as_list(value):
    return value if isinstance(value, list) else [value]


def test_dag_level_callbacks_record_the_night(dag):
    success, failure = _as_list(dag.on_success_callback), _as_list(dag.on_failure_callback)
    assert [(cb.state, cb.postgres_conn_id) for cb in success] == [("success", "postgres_eodrisk")]
    assert [(cb.state, cb.postgres_conn_id) for cb in failure] == [("failed", "postgres_eodrisk")]
    assert success[0].deadline_after == timedelta(hours=8)
    assert success[0].on_missed_sla.pagerduty_events_conn_id == "pagerduty_eodrisk"


def test_deadline_alerts_slack_and_pagerduty_with_the_shared_dedup_key(dag):
    by_name = {alert.name: alert for alert in dag.deadline}
    slack = by_name["eod_risk_business_deadline"].callback
    page = by_name["eod_risk_business_deadline_page"].callback
    assert slack.path.endswith("SlackWebhookNotifier")
    assert page.path == "airflow.providers.pagerduty.notifications.pagerduty.PagerdutyNotifier"
    assert page.kwargs["severity"] == "critical"
    assert page.kwargs["pagerduty_events_conn_id"] == "pagerduty_eodrisk"
    rendered = page.kwargs["dedup_key"].replace("{{ dag_run.dag_run_id }}", RUN_ID)
    assert rendered == f"eod_risk/{RUN_ID}/deadline"  # = PageMissedDeadline's
    for alert in dag.deadline:
        assert alert.interval == timedelta(hours=8)


# ------------------------------------------------------------------------------- limits

LIMIT_ROWS = [
    {
        "level": "desk",
        "node": "EMEA_RATES",
        "region": "EMEA",
        "measure": "var_99_1d_usd",
        "figure_usd": 8_500_000.0,
        "limit_usd": 10_000_000.0,
        "utilisation": 0.85,
        "status": "warning",
    },
    {
        "level": "firm",
        "node": "FIRM",
        "region": "FIRM",
        "measure": "worst_stress_loss_usd",
        "figure_usd": 412_000_000.0,
        "limit_usd": 400_000_000.0,
        "utilisation": 1.03,
        "status": "breach",
    },
]


def test_limit_message_names_node_measure_figure_limit_and_utilisation():
    message = messages.build_limit_message(
        dag_id="eod_risk", business_date="2026-11-24", alerts=LIMIT_ROWS
    )
    assert_valid_blocks(message)
    text = all_text(message)
    assert "1 limit breaches, 1 warnings" in text
    assert "firm FIRM: worst stress loss $412,000,000 vs limit $400,000,000 (103% used)" in text
    assert "desk EMEA_RATES: VaR 99% 1d $8,500,000 vs limit $10,000,000 (85% used)" in text
    assert text.index("FIRM") < text.index("EMEA_RATES")  # the worst first
    assert messages.build_limit_message(dag_id="d", business_date="x", alerts=[]) is None


def test_only_a_firm_breach_pages():
    event = messages.build_limit_page_event(
        dag_id="eod_risk", run_id=RUN_ID, business_date="2026-11-24", breaches=LIMIT_ROWS
    )
    assert event["dedup_key"] == f"eod_risk/{RUN_ID}/firm_limit_breach"
    assert "firm FIRM: worst stress loss" in event["summary"]
    desk_only = [r for r in LIMIT_ROWS if r["level"] == "desk"]
    desk_breach = [{**desk_only[0], "status": "breach", "utilisation": 1.2}]
    for rows in (desk_only, desk_breach):
        assert (
            messages.build_limit_page_event(
                dag_id="eod_risk", run_id=RUN_ID, business_date="2026-11-24", breaches=rows
            )
            is None
        )


def test_limit_alerts_read_postgres_post_to_slack_and_page(sink, pg_dsn, monkeypatch):
    from urllib.parse import urlsplit

    from databricks_jobs.postgres import apply_migrations

    apply_migrations(pg_dsn)
    parts = urlsplit(pg_dsn)
    monkeypatch.setenv(
        "AIRFLOW_CONN_POSTGRES_EODRISK",
        json.dumps(
            {"conn_type": "postgres", "host": parts.hostname, "port": parts.port,
             "login": parts.username, "schema": parts.path.lstrip("/")}
        ),
    )  # fmt: skip
    import psycopg2

    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        for row in [*LIMIT_ROWS, {**LIMIT_ROWS[0], "node": "APAC_FX", "utilisation": 0.5}]:
            cur.execute(
                "insert into risk.limit_utilisation (business_date, level, node, region, measure, "
                "figure_usd, limit_usd, limit_node, limit_effective_from, utilisation, status, "
                "run_id) values ('2026-11-24', %(level)s, %(node)s, %(region)s, %(measure)s, "
                "%(figure_usd)s, %(limit_usd)s, '*', '2000-01-01', %(utilisation)s, "
                "case when %(utilisation)s >= 1 then 'breach' when %(utilisation)s >= 0.8 "
                "then 'warning' else 'ok' end, 'r1')",
                row,
            )
    conn.close()
    sent = callbacks.post_limit_alerts(
        dag_id="eod_risk",
        business_date="2026-11-24",
        run_id=RUN_ID,
        postgres_conn_id="postgres_eodrisk",
        slack_webhook_conn_id="slack_eodrisk",
        pagerduty_events_conn_id="pagerduty_eodrisk",
    )
    assert sent == {"alerts": 2, "slack": True, "paged": True}
    slack = json.dumps(read_messages(sink.messages_file))
    assert "EMEA_RATES" in slack and "APAC_FX" not in slack
    [page] = read_pages(sink.messages_file)
    assert page["payload"]["payload"]["component"] == "limits"
    quiet = callbacks.post_limit_alerts(
        dag_id="eod_risk",
        business_date="2026-11-23",
        run_id=RUN_ID,
        postgres_conn_id="postgres_eodrisk",
        slack_webhook_conn_id="slack_eodrisk",
        pagerduty_events_conn_id="pagerduty_eodrisk",
    )
    assert quiet == {"alerts": 0, "slack": False, "paged": False}
