"""Run-time pieces of the ``eod_risk`` DAG: failure alert, success summary, sensor check.

Provider hooks are imported inside the functions, so importing this module at DAG parse
time costs nothing; the messages themselves are built by the pure functions in
:mod:`eodrisk_dag.messages`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
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
from eodrisk_dag.run_history import (
    limit_alerts,
    previous_firm_var,
    seconds_between,
    write_ingest_rows,
)

log = logging.getLogger(__name__)

SLACK_TIMEOUT_S = 10
PAGERDUTY_TIMEOUT_S = 10
XCOM_RUN_PAGE_URL = "run_page_url"  # pushed by DatabricksRunNowOperator before it waits


def business_date_of(context: Mapping[str, Any]) -> str:
    """The business date of a run: the ``business_date`` param, else the logical date."""
    params = context.get("params") or {}
    return str(params.get("business_date") or context.get("ds") or "unknown")


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
    run_id: str | None = None,
    run_started_at: datetime | None = None,
    figures_ready_at: datetime | None = None,
    sla_deadline: datetime | None = None,
    log_url: str | None = None,
    report_url: str | None = None,
) -> dict[str, Any]:
    """Post the success summary to Slack; returns the message (small, for the task log).

    With ``postgres_conn_id``: the previous night's firm VaR comes from ``risk.firm_summary``
    (change vs yesterday) and the regions' trade counts are added to the run history.
    Latency is ``figures_ready_at - run_started_at`` (this task's start, the DAG run's start).
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
        if summary and run_id and isinstance(summary.get("trades"), Mapping):
            try:
                write_ingest_rows(
                    postgres_conn_id, dag_id=dag_id, run_id=run_id, trades=summary["trades"]
                )
            except Exception as err:
                log.warning("Could not add trade counts to risk.task_runs: %s", err)
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
    """Called by the DAG-level run recorder when a run ended after its business deadline."""

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
