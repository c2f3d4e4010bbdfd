"""Critical-failure paging, the richer success summary, the run recorder's rows, DAG wiring."""

from __future__ import annotations

import json
import logging
import sys
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
    all_text,
    assert_valid_blocks,
    failure_context,
)

airflow_env.isolate()  # before airflow is imported
if str(airflow_env.DAGS_FOLDER) not in sys.path:
    sys.path.append(str(airflow_env.DAGS_FOLDER))  # as Airflow does for the DAG bundle

from eodrisk_dag import callbacks, messages, records  # noqa: E402 - needs the dags folder

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


def test_a_task_leaves_its_outcome_and_the_recorder_makes_its_row():
    start = datetime(2026, 11, 24, 22, 5, tzinfo=UTC)
    context = critical_context("data_ingestion.ingest_apac")
    ti = context["ti"]
    ti.start_date, ti.end_date = start, start + timedelta(seconds=42.5)
    pushed = {}
    ti.xcom_push = lambda key, value: pushed.update({key: value})
    callbacks.NoteOutcome()(context)
    outcome = json.loads(json.dumps(pushed[records.XCOM_OUTCOME]))  # what XCom keeps
    row = records.task_run_row(
        dag_id="eod_risk",
        run_id=RUN_ID,
        business_date="2026-11-24",
        task_id="data_ingestion.ingest_apac",
        state="failed",
        regions=REGIONS,
        outcome=outcome,
        databricks_run_id=41,
        run_page_url=RUN_PAGE,
    )
    assert row["region"] == "APAC"
    assert row["attempt"] == 2
    assert row["started_at"] == start
    assert row["duration_s"] == 42.5
    assert row["business_date"] == "2026-11-24"
    assert row["databricks_run_id"] == 41
    assert row["run_page_url"] == RUN_PAGE
    assert row["log_url"] == LOG_URL
    assert row["error"].startswith("ValueError: header mismatch")


def test_a_task_that_never_ran_is_attempt_zero_with_its_state():
    row = records.task_run_row(
        dag_id="eod_risk",
        run_id=RUN_ID,
        business_date="2026-11-24",
        task_id="load_reporting",
        state="upstream_failed",
        regions=REGIONS,
        duration_s=0.0,
    )
    assert (row["attempt"], row["state"], row["region"], row["error"]) == (
        0,
        "upstream_failed",
        None,
        None,
    )


def test_note_outcome_never_raises(caplog):
    with caplog.at_level(logging.WARNING):
        callbacks.NoteOutcome()({})  # no task instance
        callbacks.NoteOutcome()(critical_context())  # no XCom to push to
    assert "Could not note the task's outcome" in caplog.text


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
    assert records.databricks_durations(run) == (3.0, 32.0)
    assert records.databricks_durations({"tasks": []}) == (None, None)
    row = records.task_run_row(
        dag_id="eod_risk",
        run_id=RUN_ID,
        business_date="2026-11-24",
        task_id="firm_risk",
        state="success",
        regions=REGIONS,
        databricks_run_id=7,
        databricks_run={**run, "run_page_url": RUN_PAGE},
    )
    assert (row["setup_duration_s"], row["execution_duration_s"]) == (3.0, 32.0)
    assert row["run_page_url"] == RUN_PAGE


def _task_rows(**states):
    return [{"task_id": task_id, "state": state} for task_id, state in states.items()]


def test_pipeline_run_row_uses_the_run_start_the_last_task_and_the_deadline():
    logical = datetime(2026, 11, 24, 22, 0, tzinfo=UTC)
    dag_run = SimpleNamespace(
        dag_id="eod_risk",
        run_id=RUN_ID,
        run_type="scheduled",
        logical_date=logical,
        start_date=logical + timedelta(seconds=4),
    )
    row = records.pipeline_run_row(
        dag_run=dag_run,
        business_date="2026-11-24",
        ended_at=logical + timedelta(hours=8, minutes=1),
        task_rows=_task_rows(
            firm_risk="success", load_reporting="failed", notify_limits="upstream_failed"
        ),
        deadline_after=timedelta(hours=8),
    )
    assert row["state"] == "failed"
    assert row["sla_deadline"] == logical + timedelta(hours=8)
    assert row["sla_met"] is False
    assert row["latency_s"] == 8 * 3600 + 60 - 4
    assert row["failed_tasks"] == ["load_reporting"]
    assert records.missed_deadline(row)
    # skipped tasks (a region's holiday) do not fail the night
    ok = records.pipeline_run_row(
        dag_run=dag_run,
        business_date="2026-11-24",
        ended_at=logical + timedelta(hours=1),
        task_rows=_task_rows(wait_for_trades_amer="skipped", firm_risk="success"),
        deadline_after=timedelta(hours=8),
    )
    assert (ok["state"], ok["sla_met"], ok["failed_tasks"]) == ("success", True, [])
    assert not records.missed_deadline(ok)


def test_a_manual_rerun_of_a_past_date_has_its_latency_but_no_deadline_and_no_page():
    """A rerun of last week's night ends days after that night's deadline: not a miss."""
    logical = datetime(2026, 11, 24, 22, 0, tzinfo=UTC)
    dag_run = SimpleNamespace(
        dag_id="eod_risk",
        run_id="manual__2026-11-30T10:00:00+00:00",
        run_type="manual",
        logical_date=logical,
        start_date=logical + timedelta(days=5, hours=12),
    )
    ended = logical + timedelta(days=5, hours=12, minutes=9)
    record = records.pipeline_run_row(
        dag_run=dag_run,
        business_date="2026-11-24",
        ended_at=ended,
        task_rows=_task_rows(firm_risk="success"),
        deadline_after=timedelta(hours=8),
    )
    assert (record["sla_deadline"], record["sla_met"]) == (None, None)
    assert record["latency_s"] == 9 * 60
    assert not records.missed_deadline(record)  # no page
    scheduled = SimpleNamespace(**{**vars(dag_run), "run_type": "scheduled"})
    late = records.pipeline_run_row(
        dag_run=scheduled,
        business_date="2026-11-24",
        ended_at=ended,
        task_rows=_task_rows(firm_risk="success"),
        deadline_after=timedelta(hours=8),
    )
    assert late["sla_deadline"] == logical + timedelta(hours=8)
    assert records.missed_deadline(late)
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


def test_the_business_date_is_the_param_else_the_logical_date():
    assert callbacks.business_date({"business_date": "2026-11-20"}, "2026-11-24") == "2026-11-20"
    assert callbacks.business_date({"business_date": None}, "2026-11-24") == "2026-11-24"
    with pytest.raises(ValueError, match="business_date param"):
        callbacks.business_date({}, None)
    assert callbacks.business_date_of({"params": {}}) == "unknown"  # an alert still goes


# ----------------------------------------------------------------------------- DAG wiring


@pytest.fixture(scope="module")
def dag():
    return airflow_env.load_dag()


def test_every_task_alerts_pages_and_notes_its_outcome(dag):
    for task in dag.tasks:
        failure = task.on_failure_callback
        kinds = {type(cb).__name__ for cb in failure}
        assert kinds == {"SlackFailureAlert", "PagerDutyCriticalAlert", "NoteOutcome"}, task
        assert type(failure[0]).__name__ == "SlackFailureAlert"  # the human first
        for outcome in (task.on_success_callback, task.on_skipped_callback):
            assert [type(cb).__name__ for cb in _as_list(outcome)] == ["NoteOutcome"], task
        assert not task.on_retry_callback, task
        pager = next(cb for cb in failure if type(cb).__name__ == "PagerDutyCriticalAlert")
        assert pager.critical_tasks == {"firm_risk", "load_reporting"}
        assert pager.pagerduty_events_conn_id == "pagerduty_eodrisk"


def _as_list(value):
    return value if isinstance(value, list) else [value]


def test_one_task_records_the_night_after_every_other_task(dag):
    """``record_run``: downstream of every task, runs when they are all done (the trigger rule
    of a teardown without setup: all done) and never decides the run's state."""
    from airflow.task.trigger_rule import TriggerRule

    record = dag.get_task("record_run")
    assert record.upstream_task_ids == {t.task_id for t in dag.tasks} - {"record_run"}
    assert record.is_teardown and not record.on_failure_fail_dagrun
    assert record.trigger_rule == TriggerRule.ALL_DONE_SETUP_SUCCESS
    assert not [t for t in dag.tasks if t.is_setup]  # so: all done
    assert not dag.on_success_callback and not dag.on_failure_callback  # no DAG-level writer


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
