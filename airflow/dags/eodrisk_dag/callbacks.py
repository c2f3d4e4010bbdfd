"""Run-time pieces of the ``eod_risk`` DAG: failure alert, success summary, sensor check.

Provider hooks are imported inside the functions, so importing this module at DAG parse
time costs nothing; the messages themselves are built by the pure functions in
:mod:`eodrisk_dag.messages`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from eodrisk_dag.messages import (
    build_failure_message,
    build_limit_message,
    build_limit_page_event,
    build_page_event,
    build_summary_message,
    parse_firm_summary,
    region_of_task,
)
from eodrisk_dag.records import (
    PIPELINE_COLUMNS,
    PIPELINE_KEY,
    TASK_COLUMNS,
    TASK_KEY,
    XCOM_OUTCOME,
    XCOM_RUN_ID,
    XCOM_RUN_PAGE_URL,
    missed_deadline,
    pipeline_run_row,
    seconds_between,
    task_outcome,
    task_run_row,
)

log = logging.getLogger(__name__)

SLACK_TIMEOUT_S = 10
PAGERDUTY_TIMEOUT_S = 10


def business_date(params: Mapping[str, Any] | None, ds: str | None) -> str:
    """The business date of a run, the one place it is derived: the ``business_date`` param
    (to rerun a given date), else the logical date (``ds``). The DAG's templates call it as
    the macro ``business_date(params, ds)``; the callbacks through :func:`business_date_of`."""
    value = (params or {}).get("business_date") or ds
    if not value:
        raise ValueError(
            "the run has no business date: trigger it with a logical date or the "
            "business_date param (YYYY-MM-DD)"
        )
    return str(value)


def business_date_of(context: Mapping[str, Any]) -> str:
    """:func:`business_date` of a callback's context ("unknown": an alert must still go)."""
    try:
        return business_date(context.get("params"), context.get("ds"))
    except ValueError:
        return "unknown"


def send_to_slack(slack_webhook_conn_id: str, message: Mapping[str, Any]) -> None:
    """Post a ``{"text", "blocks"}`` message through the Slack provider's webhook hook."""
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    hook = SlackWebhookHook(slack_webhook_conn_id=slack_webhook_conn_id, timeout=SLACK_TIMEOUT_S)
    hook.send(text=message["text"], blocks=message["blocks"], unfurl_links=False)


class SlackFailureAlert:
    """``on_failure_callback`` posting the failed task, its region, date, attempt, error and links.

    A callback must never make things worse: any error here is logged and swallowed.
    """

    def __init__(self, *, slack_webhook_conn_id: str, regions: Sequence[str]) -> None:
        self.slack_webhook_conn_id = slack_webhook_conn_id
        self.regions = tuple(regions)

    def __repr__(self) -> str:
        return f"SlackFailureAlert(slack_webhook_conn_id={self.slack_webhook_conn_id!r})"

    def __call__(self, context: Mapping[str, Any]) -> None:
        try:
            message = failure_message_from_context(context, self.regions)
            send_to_slack(self.slack_webhook_conn_id, message)
        except Exception:
            log.exception(
                "Could not post the failure alert to Slack (connection %r)",
                self.slack_webhook_conn_id,
            )


def failure_message_from_context(
    context: Mapping[str, Any], regions: Sequence[str]
) -> dict[str, Any]:
    """Gather what the alert needs from an Airflow task context and build the message."""
    ti = context["ti"]
    task = context.get("task")
    task_id = ti.task_id

    run_page_url = None
    try:
        run_page_url = ti.xcom_pull(task_ids=task_id, key=XCOM_RUN_PAGE_URL)
    except Exception:
        log.warning("Could not read the Databricks run_page_url of %s from XCom", task_id)

    exception = context.get("exception")
    if isinstance(exception, BaseException):
        error = f"{type(exception).__name__}: {exception}"
    else:
        error = str(exception) if exception else "unknown error (see the log)"

    op_kwargs = getattr(task, "op_kwargs", None) or {}
    expected_file = op_kwargs.get("marker_path") if isinstance(op_kwargs, Mapping) else None

    return build_failure_message(
        dag_id=ti.dag_id,
        task_id=task_id,
        region=region_of_task(task_id, regions),
        business_date=business_date_of(context),
        try_number=getattr(ti, "try_number", None),
        max_tries=getattr(ti, "max_tries", None),
        error=error,
        run_page_url=run_page_url if isinstance(run_page_url, str) else None,
        log_url=getattr(ti, "log_url", None),
        expected_file=expected_file,
    )


def fetch_firm_summary(
    *, databricks_conn_id: str, firm_run_id: int | str | None, task_key: str
) -> dict[str, Any] | None:
    """The firm job's JSON summary: runs/get → the ``task_key`` task run → runs/get-output.

    Returns None (and logs a warning) when anything is missing: the summary is a courtesy,
    the night's result is in Delta and Postgres either way.
    """
    if firm_run_id is None:
        log.warning("No firm run_id in XCom; posting the summary without figures")
        return None
    from airflow.providers.databricks.hooks.databricks import DatabricksHook

    try:
        hook = DatabricksHook(databricks_conn_id, retry_limit=2, retry_delay=1)
        run = hook.get_run(int(firm_run_id))
        task_runs = [t for t in run.get("tasks") or [] if t.get("task_key") == task_key]
        if not task_runs:
            log.warning("Firm run %s has no task %r; no figures", firm_run_id, task_key)
            return None
        task_run = max(task_runs, key=lambda t: t.get("attempt_number") or 0)
        output = hook.get_run_output(int(task_run["run_id"]))
        result = (output.get("notebook_output") or {}).get("result")
    except Exception as err:
        log.warning("Could not read the firm summary of run %s: %s", firm_run_id, err)
        return None
    summary = parse_firm_summary(result)
    if summary is None:
        log.warning("Firm task %r returned no JSON summary (got %.200r)", task_key, result)
    return summary


def post_firm_summary(
    *,
    dag_id: str,
    business_date: str,
    firm_run_id: int | str | None,
    firm_run_page_url: str | None,
    databricks_conn_id: str,
    slack_webhook_conn_id: str,
    firm_summary_task_key: str,
    postgres_conn_id: str | None = None,
    run_started_at: datetime | None = None,
    figures_ready_at: datetime | None = None,
    sla_deadline: datetime | None = None,
    log_url: str | None = None,
    report_url: str | None = None,
) -> dict[str, Any]:
    """Post the success summary to Slack; returns the message (small, for the task log).

    With ``postgres_conn_id``: the previous night's firm VaR comes from ``risk.firm_summary``
    (change vs yesterday). Latency is ``figures_ready_at - run_started_at`` (this task's
    start, the DAG run's start).
    """
    summary = fetch_firm_summary(
        databricks_conn_id=databricks_conn_id,
        firm_run_id=firm_run_id,
        task_key=firm_summary_task_key,
    )
    previous = None
    if postgres_conn_id:
        try:
            previous = previous_firm_var(postgres_conn_id, business_date)
        except Exception as err:
            log.warning("No previous firm VaR from Postgres (%r): %s", postgres_conn_id, err)
    latency_s = seconds_between(run_started_at, figures_ready_at)
    margin_s = seconds_between(figures_ready_at, sla_deadline)
    message = build_summary_message(
        dag_id=dag_id,
        business_date=business_date,
        summary=summary,
        firm_run_page_url=firm_run_page_url,
        log_url=log_url,
        previous=previous,
        latency_s=latency_s,
        sla_deadline=_local_time(sla_deadline),
        sla_margin_s=margin_s,
        report_url=report_url,
    )
    send_to_slack(slack_webhook_conn_id, message)
    log.info("Posted the summary: %s", message["text"])
    return message


def post_limit_alerts(
    *,
    dag_id: str,
    business_date: str,
    run_id: str,
    postgres_conn_id: str,
    slack_webhook_conn_id: str,
    pagerduty_events_conn_id: str,
) -> dict[str, Any]:
    """After the load: post the night's limit warnings and breaches to Slack, and page the
    on-call when a firm limit is breached. Returns what was sent (small, for the log).

    Unlike the courtesy summary this raises when Postgres cannot be read: a night whose
    limits were not checked must not look green.
    """
    alerts = limit_alerts(postgres_conn_id, business_date)
    message = build_limit_message(dag_id=dag_id, business_date=business_date, alerts=alerts)
    if message:
        send_to_slack(slack_webhook_conn_id, message)
        log.info("Posted the limit alerts: %s", message["text"])
    event = build_limit_page_event(
        dag_id=dag_id, run_id=run_id, business_date=business_date, breaches=alerts
    )
    if event:
        send_pagerduty_event(pagerduty_events_conn_id, event)
        log.info("Paged the firm limit breach: %s", event["summary"])
    return {"alerts": len(alerts), "slack": bool(message), "paged": bool(event)}


def previous_firm_var(postgres_conn_id: str, business_date: str) -> tuple[str, float] | None:
    """The last loaded firm VaR 99% 1d before ``business_date`` (date, USD), if any."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    row = PostgresHook(postgres_conn_id=postgres_conn_id).get_first(
        "select business_date, firm_var_99_1d_usd from risk.firm_summary "
        "where business_date < %s order by business_date desc limit 1",
        parameters=(business_date,),
    )
    return (row[0].isoformat(), float(row[1])) if row else None


LIMIT_ALERT_COLUMNS = (
    "level",
    "node",
    "region",
    "measure",
    "figure_usd",
    "limit_usd",
    "utilisation",
    "status",
)


def limit_alerts(postgres_conn_id: str, business_date: str) -> list[dict[str, Any]]:
    """The date's rows of ``risk.limit_utilisation`` at 80% of their limit or more."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    rows = PostgresHook(postgres_conn_id=postgres_conn_id).get_records(
        f"select {', '.join(LIMIT_ALERT_COLUMNS)} from risk.limit_utilisation "
        "where business_date = %s and status in ('warning', 'breach') "
        "order by utilisation desc, level, node, measure",
        parameters=(business_date,),
    )
    return [dict(zip(LIMIT_ALERT_COLUMNS, row, strict=True)) for row in rows]


def _local_time(moment: datetime | None, tz: str = "Europe/London") -> str | None:
    if moment is None:
        return None
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")


# ------------------------------------------------------------------------------- PagerDuty


def send_pagerduty_event(pagerduty_events_conn_id: str, event: Mapping[str, Any]) -> str:
    """Trigger a PagerDuty Events API v2 event through the provider's events hook.

    The connection's password is the integration (routing) key. Its host, when it carries a
    scheme (``http://127.0.0.1:8766``), replaces ``https://events.pagerduty.com``: that is
    how the local sink receives pages; leave it empty in production.
    """
    import asyncio

    from airflow.providers.pagerduty.hooks.pagerduty_events import PagerdutyEventsAsyncHook
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(pagerduty_events_conn_id)
    if not conn.password:
        raise ValueError(f"connection {pagerduty_events_conn_id!r} has no integration key")
    hook = PagerdutyEventsAsyncHook(integration_key=conn.password)
    if conn.host and "://" in conn.host:
        hook.base_url = conn.host.rstrip("/")
    return asyncio.run(asyncio.wait_for(hook.send_event(**event), PAGERDUTY_TIMEOUT_S))


class PagerDutyCriticalAlert:
    """``on_failure_callback`` paging the on-call when a critical task fails for good.

    Only the tasks in ``critical_tasks`` page (firm risk, the Postgres load): without them
    there are no numbers for the morning. Never raises.
    """

    def __init__(
        self,
        *,
        pagerduty_events_conn_id: str,
        critical_tasks: Sequence[str],
        regions: Sequence[str],
    ) -> None:
        self.pagerduty_events_conn_id = pagerduty_events_conn_id
        self.critical_tasks = frozenset(critical_tasks)
        self.regions = tuple(regions)

    def __repr__(self) -> str:
        return (
            f"PagerDutyCriticalAlert(pagerduty_events_conn_id={self.pagerduty_events_conn_id!r}, "
            f"critical_tasks={sorted(self.critical_tasks)})"
        )

    def __call__(self, context: Mapping[str, Any]) -> None:
        try:
            ti = context["ti"]
            if ti.task_id not in self.critical_tasks:
                return
            event = page_event_from_context(context, self.regions)
            send_pagerduty_event(self.pagerduty_events_conn_id, event)
        except Exception:
            log.exception(
                "Could not page the critical failure (connection %r)",
                self.pagerduty_events_conn_id,
            )


def page_event_from_context(context: Mapping[str, Any], regions: Sequence[str]) -> dict[str, Any]:
    ti = context["ti"]
    run_page_url = None
    try:
        run_page_url = ti.xcom_pull(task_ids=ti.task_id, key=XCOM_RUN_PAGE_URL)
    except Exception:
        log.warning("Could not read the Databricks run_page_url of %s from XCom", ti.task_id)
    exception = context.get("exception")
    if isinstance(exception, BaseException):
        error = f"{type(exception).__name__}: {exception}"
    else:
        error = str(exception) if exception else None
    return build_page_event(
        dag_id=ti.dag_id,
        run_id=str(getattr(ti, "run_id", None) or context.get("run_id") or "unknown"),
        task_id=ti.task_id,
        region=region_of_task(ti.task_id, regions),
        business_date=business_date_of(context),
        reason=f"{ti.task_id} failed",
        error=error,
        run_page_url=run_page_url if isinstance(run_page_url, str) else None,
        log_url=getattr(ti, "log_url", None),
    )


class PageMissedDeadline:
    """Called by ``record_run`` when the night ended after its business deadline."""

    def __init__(self, *, pagerduty_events_conn_id: str) -> None:
        self.pagerduty_events_conn_id = pagerduty_events_conn_id

    def __repr__(self) -> str:
        return f"PageMissedDeadline(pagerduty_events_conn_id={self.pagerduty_events_conn_id!r})"

    def __call__(self, record: Mapping[str, Any]) -> None:
        late_s = seconds_between(record["sla_deadline"], record["ended_at"])
        event = build_page_event(
            dag_id=record["dag_id"],
            run_id=record["run_id"],
            task_id=None,
            region=None,
            business_date=str(record["business_date"]),
            reason=(
                f"missed the business deadline {_local_time(record['sla_deadline'])} "
                f"by {late_s:.0f}s (run {record['state']})"
            ),
            error=None,
            run_page_url=None,
            log_url=None,
        )
        send_pagerduty_event(self.pagerduty_events_conn_id, event)


# ------------------------------------------------------------------------------- run history


class NoteOutcome:
    """``on_success``/``on_failure``/``on_skipped`` callback: leaves the attempt's outcome on
    the task instance (XCom ``outcome``: attempt, start, end, log link, error) for
    ``record_run``, which writes the night's history once every task is done. Never raises."""

    def __repr__(self) -> str:
        return "NoteOutcome()"

    def __call__(self, context: Mapping[str, Any]) -> None:
        try:
            ti = context["ti"]
            ti.xcom_push(key=XCOM_OUTCOME, value=task_outcome(ti, context.get("exception")))
        except Exception as err:
            log.warning("Could not note the task's outcome for the run history: %s", err)


def fetch_databricks_run(databricks_conn_id: str, run_id: Any) -> dict[str, Any] | None:
    """``runs/get`` of a task's Databricks run (one short call), None when unreadable."""
    from airflow.providers.databricks.hooks.databricks import DatabricksHook

    try:
        hook = DatabricksHook(databricks_conn_id, timeout_seconds=10, retry_limit=2, retry_delay=1)
        return hook.get_run(int(run_id))
    except Exception as err:
        log.warning("Could not read Databricks run %s for the run history: %s", run_id, err)
        return None


def write_night(
    postgres_conn_id: str, pipeline_row: Mapping[str, Any], task_rows: Sequence[Mapping[str, Any]]
) -> None:
    """Upsert the night's task rows, then its run row (a rerun of the recorder replaces them)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    hook = PostgresHook(postgres_conn_id=postgres_conn_id)
    for table, columns, key, rows in (
        ("risk.task_runs", TASK_COLUMNS, TASK_KEY, task_rows),
        ("risk.pipeline_runs", PIPELINE_COLUMNS, PIPELINE_KEY, [pipeline_row]),
    ):
        hook.insert_rows(
            table,
            [[_cell(row[c]) for c in columns] for row in rows],
            target_fields=list(columns),
            replace=True,
            replace_index=list(key),
            commit_every=len(rows),  # one transaction per table
        )


def _cell(value: Any) -> Any:
    """A list as a Postgres array literal: the hook would send a list as JSON."""
    if not isinstance(value, list | tuple):
        return value
    quoted = ('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value)
    return "{" + ",".join(quoted) + "}"


def record_night(
    context: Mapping[str, Any],
    *,
    business_date: str,
    postgres_conn_id: str,
    databricks_conn_id: str,
    regions: Sequence[str],
    deadline_after: timedelta,
    on_missed_sla: Callable[[Mapping[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The body of ``record_run``: every other task of the run is done; write the night.

    The final states come from the Task SDK (the run's task breadcrumbs: state and duration
    of each finished task), the attempt, times, log link and error from the outcome each task
    left in XCom (:class:`NoteOutcome`), the cluster setup and execution seconds from the
    Databricks run in the task's XCom. A run that ended after its business deadline is paged
    (``on_missed_sla``): the deadline alert pages while a run is late, this covers runs the
    scheduler did not watch (``dag.test``) under the same dedup key. Returns the run row.
    """
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    ti, dag_run = context["ti"], context["dag_run"]
    finished = [
        crumb
        for crumb in RuntimeTaskInstance.get_task_breadcrumbs(ti.dag_id, ti.run_id)
        if crumb["task_id"] != ti.task_id
    ]
    task_rows = []
    for crumb in finished:
        task_id = crumb["task_id"]
        databricks_run_id = ti.xcom_pull(task_ids=task_id, key=XCOM_RUN_ID)
        task_rows.append(
            task_run_row(
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                business_date=business_date,
                task_id=task_id,
                state=str(crumb["state"]),
                regions=regions,
                duration_s=crumb.get("duration"),
                outcome=ti.xcom_pull(task_ids=task_id, key=XCOM_OUTCOME),
                databricks_run_id=databricks_run_id,
                run_page_url=ti.xcom_pull(task_ids=task_id, key=XCOM_RUN_PAGE_URL),
                databricks_run=(
                    fetch_databricks_run(databricks_conn_id, databricks_run_id)
                    if databricks_run_id is not None
                    else None
                ),
            )
        )
    night = pipeline_run_row(
        dag_run=dag_run,
        business_date=business_date,
        ended_at=ti.start_date,
        task_rows=task_rows,
        deadline_after=deadline_after,
    )
    write_night(postgres_conn_id, night, task_rows)
    log.info(
        "Recorded %s for %s: %s, %d tasks, failed %s",
        night["run_id"],
        business_date,
        night["state"],
        len(task_rows),
        night["failed_tasks"] or "none",
    )
    if missed_deadline(night) and on_missed_sla is not None:
        try:
            on_missed_sla(night)
        except Exception as err:
            log.warning("Could not page the missed deadline: %s", err)
    return {k: str(v) if v is not None else None for k, v in night.items()}


def trades_landed(marker_path: str, trades_path: str) -> bool:
    """Sensor check: the region's ``_SUCCESS`` marker is there (and so must the trades file be).

    The producer writes the marker after the file, so a marker without its file is an error
    to fix upstream, not something to wait for. Paths are local paths or object-store URIs
    (``s3://``, ``abfss://``: ``airflow.sdk.ObjectStoragePath`` through the provider's
    filesystem, credentials from the worker's environment or instance role).
    """
    from airflow.sdk import ObjectStoragePath

    if not ObjectStoragePath(marker_path).is_file():
        log.info("Waiting for %s", marker_path)
        return False
    if not ObjectStoragePath(trades_path).is_file():
        raise FileNotFoundError(
            f"{marker_path} exists but the trades file {trades_path} does not; "
            "the producer must write the trades file before the marker"
        )
    log.info("Found %s and %s", marker_path, trades_path)
    return True
