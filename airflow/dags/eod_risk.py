"""
### eod_risk — end-of-day market risk

Every firm business day after the close, per region: wait for the trade file and its
`_SUCCESS` marker, ingest it (Databricks job), compute the region's VaR/ES (Databricks job); then
aggregate the firm's risk across regions, and in parallel load Postgres for BI and post
the Slack summary; after the load, limit warnings and breaches go to Slack (a firm breach
also pages PagerDuty). Every task alerts Slack on failure with the Databricks run and log links;
a failure of `firm_risk` or `load_reporting`, or a missed business deadline, also pages
PagerDuty. When every other task is done, `record_run` (a teardown: it never changes the run's
state) writes the night to Postgres (`risk.pipeline_runs`, `risk.task_runs`) for
`eodrisk status`, metrics and BI, from the run's task states and the outcome each task left
in XCom.

```
wait_for_trades_<r> ─► data_ingestion.ingest_<r> ─► risk_modelling.risk_<r> ─┐ (per region)
                                                                              ▼
                                  firm_risk ─┬─► load_reporting ─[risk_reporting]─► publish_report
                                             │                └────────────► notify_limits
                                             └─► notify_summary
                                          every task ─► record_run (all done)
```

Calendars (`eodrisk_dag/calendars.py`, one exchange per region in the config): the DAG runs
only on firm business days (a weekday on which at least one region trades). On a region's
holiday its sensor and ingest are skipped — no wait, no alert — and its risk task values
the positions of its previous business day under the day's market data (carried forward,
flagged with that date in Delta, Postgres, the report and the Slack summary).

`load_reporting` produces the Asset `risk_reporting` (the night's rows in Postgres);
`publish_report` consumes it: it builds the daily HTML report from the `bi` views, writes it
to the reports folder (Variable `eodrisk_reports_root`) and uploads it to Slack with the
provider's file upload. The Slack summary links to the report's place under
`eodrisk_reports_url`.

Configuration: `eod_risk.yml` next to this file (regions, job names, connection ids,
timeouts, retries, deadline, critical tasks). Business date: the logical date (`ds`), or the
`business_date` param to rerun a given date, derived in one place (`callbacks.business_date`,
the macro `business_date(params, ds)`) and passed to every task. Landing root: the Airflow Variable
named in the config (`eodrisk_landing_root`), read when the sensors run.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pendulum
from airflow.providers.pagerduty.notifications.pagerduty import PagerdutyNotifier
from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
from airflow.sdk import (
    DAG,
    Asset,
    AsyncCallback,
    DeadlineAlert,
    DeadlineReference,
    Param,
    TaskGroup,
    XComArg,
    task,
)
from airflow.timetables.events import EventsTimetable
from eodrisk_dag.callbacks import (
    NoteOutcome,
    PageMissedDeadline,
    PagerDutyCriticalAlert,
    SlackFailureAlert,
    business_date,
    post_firm_summary,
    post_limit_alerts,
    record_night,
    trades_landed,
)
from eodrisk_dag.config import load_config
from eodrisk_dag.idempotency import idempotency_token
from eodrisk_dag.operators import RepairingRunNowOperator
from eodrisk_dag.publish import publish_daily_report
from eodrisk_dag.records import sla_deadline_of
from eodrisk_dag.schedule import firm_run_times, schedule_window

CONFIG = load_config(
    os.environ.get("EODRISK_DAG_CONFIG") or Path(__file__).with_name("eod_risk.yml")
)

CALENDARS = CONFIG.calendars()

DAG_ID = Path(__file__).stem  # the DAG is named after its file, as the platform finds it
# The business date, derived in one place (callbacks.business_date) and passed to every task.
BUSINESS_DATE_OF_RUN = "business_date(params, ds)"
BUSINESS_DATE = f"{{{{ {BUSINESS_DATE_OF_RUN} }}}}"
YYYYMMDD = f"{{{{ {BUSINESS_DATE_OF_RUN} | replace('-', '') }}}}"
LANDING_ROOT = f"{{{{ var.value.{CONFIG.variables.landing_root} }}}}"
REPORTS_ROOT = f"{{{{ var.value.{CONFIG.variables.reports_root} }}}}"
REPORT_URL = f"{{{{ var.value.{CONFIG.variables.reports_url} }}}}/" + CONFIG.report.file.replace(
    "{date}", BUSINESS_DATE
)
# The night's rows in Postgres: produced by load_reporting, consumed by publish_report.
RISK_REPORTING = Asset(name="risk_reporting", uri="eodrisk://postgres/risk", group="eodrisk")
IDEMPOTENCY_TOKEN = (
    "{{{{ idempotency_token(dag.dag_id, run_id, '{task_id}', '{scope}', dag_run.clear_number) }}}}"
)
DEADLINE_DEDUP_KEY = f"{DAG_ID}/{{{{ dag_run.dag_run_id }}}}/deadline"  # = the late-run page's


def positions_date(region: str, business_date: str) -> str:
    """Template macro: the date of the positions ``region`` is valued with (carried forward
    from its previous business day on its holidays)."""
    return CALENDARS.positions_date(region, date.fromisoformat(business_date)).isoformat()


def landing_name(file_pattern: str) -> str:
    return file_pattern.replace("{yyyymmdd}", YYYYMMDD)


def landing_path(region: str, file_pattern: str) -> str:
    return f"{LANDING_ROOT}/{region}/{landing_name(file_pattern)}"


def databricks_job(
    task_id: str,
    job_name: str,
    job_parameters: dict[str, str],
    scope: str = "",
    trigger_rule: str = "all_success",
    outlets: list[Asset] | None = None,
):
    """Run a bundle job by name and wait for it; run_id and run_page_url go to XCom.

    Every try of the task asks for the same Databricks run (idempotency token of dag, run,
    task and ``scope`` — the region): a worker lost mid-wait reattaches, a failed run is
    repaired rather than started again, and killing the task cancels the run (on_kill).
    """
    options = CONFIG.databricks
    return RepairingRunNowOperator(
        task_id=task_id,
        job_name=job_name,
        job_parameters=job_parameters,
        databricks_conn_id=CONFIG.connections.databricks,
        wait_for_termination=True,
        polling_period_seconds=max(1, int(options.polling_period.total_seconds())),
        deferrable=options.deferrable,
        repair_run=options.repair_run,
        idempotency_token=IDEMPOTENCY_TOKEN.format(task_id=task_id, scope=scope),
        databricks_retry_limit=options.api_retry_limit,
        databricks_retry_delay=options.api_retry_delay.total_seconds(),
        do_xcom_push=True,
        execution_timeout=CONFIG.execution_timeout.databricks_job,
        trigger_rule=trigger_rule,
        outlets=outlets or [],
    )


with DAG(
    dag_id=DAG_ID,
    description="End-of-day market risk: trades → Databricks → firm VaR → Postgres, Slack",
    doc_md=__doc__,
    # Parse-time dates are the DAG's schedule, not a task's business date.
    schedule=EventsTimetable(
        firm_run_times(
            CONFIG.schedule.cron,
            CONFIG.schedule.timezone,
            *schedule_window(CONFIG.schedule.start_date, date.today()),
            CALENDARS,
        ),
        presorted=True,
        description=f"{CONFIG.schedule.cron} ({CONFIG.schedule.timezone}) on firm business days",
    ),
    start_date=pendulum.datetime(
        CONFIG.schedule.start_date.year,
        CONFIG.schedule.start_date.month,
        CONFIG.schedule.start_date.day,
        tz=CONFIG.schedule.timezone,
    ),
    catchup=False,
    max_active_runs=1,
    user_defined_macros={
        "business_date": business_date,
        "idempotency_token": idempotency_token,
        "positions_date": positions_date,
    },
    tags=list(CONFIG.tags),
    params={
        "business_date": Param(
            None,
            type=["null", "string"],
            pattern=r"^\d{4}-\d{2}-\d{2}$",
            title="Business date",
            description="YYYY-MM-DD to (re)run; empty means the run's logical date.",
        )
    },
    default_args={
        "owner": CONFIG.owner,
        "retries": CONFIG.retries.retries,
        "retry_delay": CONFIG.retries.retry_delay,
        "retry_exponential_backoff": CONFIG.retries.exponential_backoff,
        "max_retry_delay": CONFIG.retries.max_retry_delay,
        "execution_timeout": CONFIG.execution_timeout.databricks_job,
        # Alert first (fastest to a human), then page, then note the outcome for record_run.
        "on_failure_callback": [
            SlackFailureAlert(
                slack_webhook_conn_id=CONFIG.connections.slack_webhook, regions=CONFIG.region_names
            ),
            PagerDutyCriticalAlert(
                pagerduty_events_conn_id=CONFIG.connections.pagerduty_events,
                critical_tasks=CONFIG.alerts.critical_tasks,
                regions=CONFIG.region_names,
            ),
            NoteOutcome(),
        ],
        "on_success_callback": NoteOutcome(),
        "on_skipped_callback": NoteOutcome(),
    },
    # Evaluated by the scheduler; the callbacks run in the triggerer, so they are provider
    # notifiers (importable there), not code of this folder. Their context is the REST API's
    # DAG run (`dag_run.dag_run_id`, not `run_id`) and `deadline.deadline_time` (UTC).
    deadline=[
        DeadlineAlert(
            reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
            interval=CONFIG.deadline.after_logical_date,
            callback=AsyncCallback(
                SlackWebhookNotifier,
                kwargs={
                    "slack_webhook_conn_id": CONFIG.connections.slack_webhook,
                    "text": (
                        f":alarm_clock: {DAG_ID} missed its deadline: run "
                        "{{ dag_run.dag_run_id }} was not done by {{ deadline.deadline_time }}"
                    ),
                },
            ),
            name="eod_risk_business_deadline",
        ),
        DeadlineAlert(
            reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
            interval=CONFIG.deadline.after_logical_date,
            callback=AsyncCallback(
                PagerdutyNotifier,
                kwargs={
                    "pagerduty_events_conn_id": CONFIG.connections.pagerduty_events,
                    "summary": (
                        f"{DAG_ID}: run {{{{ dag_run.dag_run_id }}}} missed the business deadline "
                        "{{ deadline.deadline_time }}"
                    ),
                    "severity": "critical",
                    "source": DAG_ID,
                    "dedup_key": DEADLINE_DEDUP_KEY,
                    "component": "deadline",
                    "group": DAG_ID,
                    "class_type": "sla_missed",
                },
            ),
            name="eod_risk_business_deadline_page",
        ),
    ],
) as dag:

    @task.sensor(
        poke_interval=CONFIG.sensor.poke_interval,
        timeout=CONFIG.sensor.timeout,
        mode=CONFIG.sensor.mode,
        execution_timeout=CONFIG.execution_timeout.sensor,
    )
    def wait_for_trades(region: str, business_date: str, marker_path: str, trades_path: str):
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        day = date.fromisoformat(business_date)
        if firm_closed := CALENDARS.closure(day):
            raise AirflowFailException(
                f"{business_date} is not a firm business day ({firm_closed}): every region's "
                "exchange is closed, there is nothing to compute"
            )
        if closed := CALENDARS.closure(day, region):
            raise AirflowSkipException(
                f"{region} is closed on {business_date} ({closed}): no trade file expected; "
                f"its positions of {CALENDARS.positions_date(region, day)} are carried forward"
            )
        return trades_landed(marker_path, trades_path)

    @task(execution_timeout=CONFIG.execution_timeout.notify)
    def notify_summary(
        business_date: str,
        firm_run_id: int | None,
        firm_run_page_url: str | None,
        report_url: str,
    ):
        from airflow.sdk import get_current_context

        context = get_current_context()
        dag_run, ti = context["dag_run"], context["ti"]
        post_firm_summary(
            dag_id=DAG_ID,
            business_date=business_date,
            firm_run_id=firm_run_id,
            firm_run_page_url=firm_run_page_url,
            databricks_conn_id=CONFIG.connections.databricks,
            slack_webhook_conn_id=CONFIG.connections.slack_webhook,
            firm_summary_task_key=CONFIG.jobs.firm_summary_task_key,
            postgres_conn_id=CONFIG.connections.postgres,
            run_started_at=dag_run.start_date,
            figures_ready_at=ti.start_date,
            sla_deadline=sla_deadline_of(dag_run, CONFIG.deadline.after_logical_date),
            log_url=ti.log_url,
            report_url=report_url,
        )

    @task(inlets=[RISK_REPORTING], execution_timeout=CONFIG.execution_timeout.notify)
    def publish_report(business_date: str, reports_root: str) -> dict:
        return publish_daily_report(
            business_date=business_date,
            reports_root=reports_root,
            file_pattern=CONFIG.report.file,
            report_module=CONFIG.report.module,
            postgres_conn_id=CONFIG.connections.postgres,
            slack_api_conn_id=CONFIG.connections.slack_api,
            slack_channel=CONFIG.report.slack_channel,
        )

    @task(execution_timeout=CONFIG.execution_timeout.notify)
    def notify_limits(business_date: str):
        from airflow.sdk import get_current_context

        return post_limit_alerts(
            dag_id=DAG_ID,
            business_date=business_date,
            run_id=get_current_context()["dag_run"].run_id,
            postgres_conn_id=CONFIG.connections.postgres,
            slack_webhook_conn_id=CONFIG.connections.slack_webhook,
            pagerduty_events_conn_id=CONFIG.connections.pagerduty_events,
        )

    @task(execution_timeout=CONFIG.execution_timeout.notify)
    def record_run(business_date: str) -> dict:
        """Write the night to the run history once every other task is done: a teardown
        (trigger rule all done, as no setup precedes it) that leaves the run's state to the
        night's own tasks."""
        from airflow.sdk import get_current_context

        return record_night(
            get_current_context(),
            business_date=business_date,
            postgres_conn_id=CONFIG.connections.postgres,
            databricks_conn_id=CONFIG.connections.databricks,
            regions=CONFIG.region_names,
            deadline_after=CONFIG.deadline.after_logical_date,
            on_missed_sla=PageMissedDeadline(
                pagerduty_events_conn_id=CONFIG.connections.pagerduty_events
            ),
        )

    def region_parameters(region: str) -> dict[str, str]:
        return {"business_date": BUSINESS_DATE, "region": region}

    def risk_parameters(region: str) -> dict[str, str]:
        carried = f"{{{{ positions_date('{region}', {BUSINESS_DATE_OF_RUN}) }}}}"
        return {**region_parameters(region), "positions_date": carried}

    with TaskGroup("data_ingestion", tooltip="Trade files → silver.trades, per region"):
        ingest = {
            r.name: databricks_job(
                f"ingest_{r.task_suffix}",
                CONFIG.jobs.ingest_trades,
                # The files the region's sensor waited for: one pattern, in the config.
                {
                    **region_parameters(r.name),
                    "trade_file": landing_name(CONFIG.landing_files.trades),
                    "marker_file": landing_name(CONFIG.landing_files.marker),
                },
                r.name,
            )
            for r in CONFIG.regions
        }

    with TaskGroup("risk_modelling", tooltip="Positions × scenarios → VaR/ES, per region"):
        risk = {
            r.name: databricks_job(
                f"risk_{r.task_suffix}",
                CONFIG.jobs.compute_risk,
                risk_parameters(r.name),
                r.name,
                # After a skipped ingest too (the region's holiday: positions carried
                # forward), never after a failed one.
                trigger_rule="none_failed",
            )
            for r in CONFIG.regions
        }

    firm_risk = databricks_job(
        "firm_risk",
        CONFIG.jobs.firm_risk,
        {"business_date": BUSINESS_DATE, "regions": ",".join(CONFIG.region_names)},
    )
    load_reporting = databricks_job(
        "load_reporting",
        CONFIG.jobs.load_reporting,
        {"business_date": BUSINESS_DATE},
        outlets=[RISK_REPORTING],
    )

    for r in CONFIG.regions:
        landed = wait_for_trades.override(task_id=f"wait_for_trades_{r.task_suffix}")(
            region=r.name,
            business_date=BUSINESS_DATE,
            marker_path=landing_path(r.name, CONFIG.landing_files.marker),
            trades_path=landing_path(r.name, CONFIG.landing_files.trades),
        )
        landed >> ingest[r.name] >> risk[r.name] >> firm_risk

    firm_risk >> load_reporting
    load_reporting >> publish_report(business_date=BUSINESS_DATE, reports_root=REPORTS_ROOT)
    load_reporting >> notify_limits(business_date=BUSINESS_DATE)
    notify_summary(
        business_date=BUSINESS_DATE,
        firm_run_id=XComArg(firm_risk, key="run_id"),
        firm_run_page_url=XComArg(firm_risk, key="run_page_url"),
        report_url=REPORT_URL,
    )
    # After every task, not only the leaves: a failure upstream-fails the leaves while other
    # regions still run.
    dag.tasks >> record_run(business_date=BUSINESS_DATE).as_teardown()
